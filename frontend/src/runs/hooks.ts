import { useEffect, useRef, useState } from "react"
import type { RunMetricsReport } from "../../../src/domain/Grade.ts"
import type { Run } from "../../../src/domain/Run.ts"
import { useApi } from "../lib/session.tsx"
import { toastError } from "../lib/toast.tsx"
import { emptyLabels, hasLabels, loadLabels, mergeLabels, type RunLabels } from "./data.ts"

/** Prompt version and dataset names for `runs`, fetched for the runs not yet named. */
export const useRunLabels = (runs: ReadonlyArray<Run>): RunLabels => {
  const api = useApi()
  const [labels, setLabels] = useState(emptyLabels)
  const labelsRef = useRef(labels)
  labelsRef.current = labels
  const runsRef = useRef(runs)
  runsRef.current = runs
  // runs whose names are on their way: a newer list does not ask for them again
  const requested = useRef(new Set<string>())
  const missing = runs
    .filter((run) => !hasLabels(labels, [run]))
    .map((run) => run.id)
    .join(",")
  useEffect(() => {
    const unlabelled = runsRef.current.filter(
      (run) => !hasLabels(labelsRef.current, [run]) && !requested.current.has(run.id)
    )
    if (unlabelled.length === 0) return
    for (const run of unlabelled) requested.current.add(run.id)
    loadLabels(api, unlabelled, labelsRef.current).then(
      (more) => setLabels((known) => mergeLabels(known, more)),
      (error: unknown) => {
        for (const run of unlabelled) requested.current.delete(run.id)
        toastError(error)
      }
    )
  }, [api, missing])
  return labels
}

const CONCURRENCY = 6

/** Loads `ids`' metrics a few at a time; a failure of one is toasted, the others still arrive. */
const loadMetrics = async (
  load: (id: Run["id"]) => Promise<RunMetricsReport>,
  ids: ReadonlyArray<Run["id"]>,
  onLoaded: (report: RunMetricsReport) => void
) => {
  const queue = [...ids]
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      try {
        onLoaded(await load(id))
      } catch (error) {
        toastError(error)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, ids.length) }, worker))
}

const stamp = (run: Run) => `${run.status}:${JSON.stringify(run.counts)}`

/**
 * Metrics of each run, keyed by run id. A run's metrics are loaded once it is listed, and again whenever its
 * `counts` change (a live run's progress), so the figures follow the run.
 */
export const useRunMetrics = (runs: ReadonlyArray<Run>): ReadonlyMap<string, RunMetricsReport> => {
  const api = useApi()
  const [metrics, setMetrics] = useState<ReadonlyMap<string, RunMetricsReport>>(new Map())
  // what each report was loaded for: a run's id and counts
  const loadedFor = useRef(new Map<string, string>())
  const stale = runs.filter((run) => loadedFor.current.get(run.id) !== stamp(run))
  const key = stale.map((run) => `${run.id}@${stamp(run)}`).join(",")
  const staleRef = useRef(stale)
  staleRef.current = stale
  useEffect(() => {
    if (key === "") return
    const changed = staleRef.current
    for (const run of changed) loadedFor.current.set(run.id, stamp(run))
    void loadMetrics(
      (id) => api.call((client) => client.runs.metrics({ id })),
      changed.map((run) => run.id),
      (report) => setMetrics((known) => new Map(known).set(report.runId, report))
    )
  }, [api, key])
  return metrics
}
