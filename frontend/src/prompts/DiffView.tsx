// Two prompt versions side by side in time: line diffs of the system text and the template (numbered like the
// texts they come from) and the default parameters that changed.
import type { PromptVersionDiff } from "../../../src/domain/Prompt.ts"

type DiffLine = PromptVersionDiff["systemText"][number]

interface NumberedLine extends DiffLine {
  /** Line number in the old text (delete, equal) and in the new one (insert, equal). */
  readonly oldNumber: number | null
  readonly newNumber: number | null
}

export const numberLines = (lines: ReadonlyArray<DiffLine>): ReadonlyArray<NumberedLine> => {
  let oldNumber = 0
  let newNumber = 0
  return lines.map((line) => ({
    ...line,
    oldNumber: line.op === "insert" ? null : ++oldNumber,
    newNumber: line.op === "delete" ? null : ++newNumber
  }))
}

const SIGN = { equal: " ", insert: "+", delete: "-" } as const

const TextDiff = ({ title, lines }: { readonly title: string; readonly lines: ReadonlyArray<DiffLine> }) => {
  const changed = lines.some((line) => line.op !== "equal")
  return (
    <section className="pr-diff-part">
      <h3>
        {title} {!changed && <span className="muted">unchanged</span>}
      </h3>
      {lines.length === 0 ? (
        <p className="muted">Empty in both versions.</p>
      ) : (
        <table className="pr-diff-table" aria-label={`${title} diff`}>
          <tbody>
            {numberLines(lines).map((line, index) => (
              <tr key={index} className={`pr-diff-${line.op}`}>
                <td className="pr-diff-num">{line.oldNumber ?? ""}</td>
                <td className="pr-diff-num">{line.newNumber ?? ""}</td>
                <td
                  className="pr-diff-sign"
                  aria-label={line.op === "equal" ? undefined : line.op === "insert" ? "added" : "removed"}
                >
                  {SIGN[line.op]}
                </td>
                <td className="pr-diff-text">{line.text === "" ? "\u00a0" : line.text}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}

const show = (value: unknown) => (value === undefined ? "—" : JSON.stringify(value))

export const DiffView = ({ diff }: { readonly diff: PromptVersionDiff }) => (
  <div className="pr-diff">
    <p className="pr-diff-stats">
      <span className="pr-diff-added">+{diff.stats.added}</span>{" "}
      <span className="pr-diff-removed">−{diff.stats.removed}</span>{" "}
      <span className="muted">
        line{diff.stats.added + diff.stats.removed === 1 ? "" : "s"} changed
        {diff.params.length > 0 &&
          `, ${diff.params.length} parameter${diff.params.length === 1 ? "" : "s"} changed`}
      </span>
    </p>
    <TextDiff title="System prompt" lines={diff.systemText} />
    <TextDiff title="Template" lines={diff.userTemplate} />
    <section className="pr-diff-part">
      <h3>Default parameters {diff.params.length === 0 && <span className="muted">unchanged</span>}</h3>
      {diff.params.length > 0 && (
        <table className="list pr-diff-params">
          <thead>
            <tr>
              <th>Parameter</th>
              <th>Before</th>
              <th>After</th>
            </tr>
          </thead>
          <tbody>
            {diff.params.map((change) => (
              <tr key={change.key}>
                <td>
                  <code>{change.key}</code>
                </td>
                <td className="pr-diff-removed">{show(change.from)}</td>
                <td className="pr-diff-added">{show(change.to)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  </div>
)
