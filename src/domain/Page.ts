import { Schema } from "effect"

/** Keyset pagination: `cursor` is opaque; pass back `nextCursor` for the next page. */
export const PageParams = Schema.Struct({
  limit: Schema.optional(
    Schema.NumberFromString.pipe(
      Schema.int(),
      Schema.between(1, 200),
      Schema.annotations({ description: "1–200, default 50" })
    )
  ),
  cursor: Schema.optional(Schema.String.pipe(Schema.maxLength(200)))
})
export type PageParams = typeof PageParams.Type

export const Page = <A, I, R>(item: Schema.Schema<A, I, R>) =>
  Schema.Struct({
    items: Schema.Array(item),
    nextCursor: Schema.NullOr(Schema.String)
  })

export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: string | null
}

export const DEFAULT_PAGE_SIZE = 50
