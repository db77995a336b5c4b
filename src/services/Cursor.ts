import { Effect, Schema } from "effect"
import { BadRequest } from "../domain/Errors.ts"
import { DEFAULT_PAGE_SIZE } from "../domain/Page.ts"

/** A keyset position: the sort timestamp and id of the last item of a page. */
const Position = Schema.Struct({ t: Schema.String, id: Schema.UUID })
const PositionJson = Schema.parseJson(Position)

export interface CursorPosition {
  readonly at: Date
  readonly id: string
}

export const encodeCursor = (position: CursorPosition): string =>
  Buffer.from(Schema.encodeSync(PositionJson)({ t: position.at.toISOString(), id: position.id })).toString(
    "base64url"
  )

const invalid = new BadRequest({
  code: "invalid_cursor",
  message: "The cursor is not one this API returned."
})

export const decodeCursor = (
  cursor: string | undefined
): Effect.Effect<CursorPosition | undefined, BadRequest> =>
  cursor === undefined
    ? Effect.succeed(undefined)
    : Effect.try(() => Buffer.from(cursor, "base64url").toString("utf8")).pipe(
        Effect.flatMap(Schema.decodeUnknown(PositionJson)),
        Effect.flatMap(({ t, id }) => {
          const at = new Date(t)
          return Number.isNaN(at.getTime()) ? Effect.fail(invalid) : Effect.succeed({ at, id })
        }),
        Effect.mapError(() => invalid)
      )

/**
 * Pages of `limit` items: the query asks for one more row than the page holds, and the extra row only says
 * there is a next page.
 */
export const pageOf = <Row, A>(
  rows: ReadonlyArray<Row>,
  limit: number,
  position: (row: Row) => CursorPosition,
  toItem: (row: Row) => A
) => {
  const items = rows.slice(0, limit)
  const last = items[items.length - 1]
  return {
    items: items.map(toItem),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(position(last)) : null
  }
}

export const pageSize = (limit: number | undefined) => limit ?? DEFAULT_PAGE_SIZE
