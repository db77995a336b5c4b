import { Cause, Option } from "effect"

/** A failure the user is shown: the server's stable code and message (or ours, for network trouble). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: unknown
  ) {
    super(message)
    this.name = "ApiError"
  }
}

const isCoded = (value: unknown): value is { code: string; message: string; details?: unknown } =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as { code?: unknown }).code === "string" &&
  typeof (value as { message?: unknown }).message === "string"

/** Any failure as an ApiError: domain errors keep their code; transport errors become `network_error`. */
export const toApiError = (error: unknown): ApiError => {
  if (error instanceof ApiError) return error
  if (isCoded(error)) return new ApiError(error.code, error.message, error.details)
  if (
    typeof error === "object" &&
    error !== null &&
    (error as { _tag?: unknown })._tag === "RpcClientError"
  ) {
    return new ApiError("network_error", "Could not reach the Assay server. Check that it is running.")
  }
  if (error instanceof Error) return new ApiError("unexpected_error", error.message)
  return new ApiError("unexpected_error", String(error))
}

/** The error of a failed Effect: its typed failure if any, else the defect. */
export const fromCause = (cause: Cause.Cause<unknown>): ApiError =>
  Option.match(Cause.failureOption(cause), {
    onSome: toApiError,
    onNone: () => toApiError(Cause.squash(cause))
  })
