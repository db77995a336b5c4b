import { HttpApiBuilder, type Multipart } from "@effect/platform"
import { Effect, Option, Ref, Stream } from "effect"
import { AssayApi } from "../domain/Api.ts"
import { CurrentUser } from "../domain/Auth.ts"
import type { Dataset } from "../domain/Dataset.ts"
import { BadRequest } from "../domain/Errors.ts"
import type { UserId } from "../domain/Ids.ts"
import { Datasets } from "../services/Datasets.ts"

const invalidMultipart = (error: Multipart.MultipartError) =>
  new BadRequest({
    code: "invalid_multipart",
    message: `The upload is not valid multipart/form-data (${error.reason}).`
  })

export const DatasetsHttp = HttpApiBuilder.group(AssayApi, "datasets", (handlers) =>
  Effect.gen(function* () {
    const datasets = yield* Datasets

    /**
     * Parts are read as they arrive, so the file streams straight into ingestion. A `name` sent after the
     * file renames the dataset; a second file is refused and the first one undone.
     */
    const upload = (owner: UserId, parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>) =>
      Effect.gen(function* () {
        const name = yield* Ref.make<string | undefined>(undefined)
        const created = yield* Ref.make(Option.none<Dataset>())
        yield* Stream.runForEach(parts, (part) =>
          Effect.gen(function* () {
            if (part._tag === "Field") {
              if (part.key !== "name") return
              const existing = yield* Ref.get(created)
              if (Option.isSome(existing)) {
                const renamed = yield* datasets.rename(owner, existing.value.id, part.value)
                yield* Ref.set(created, Option.some(renamed))
              } else {
                yield* Ref.set(name, part.value)
              }
              return
            }
            if (part.key !== "file") {
              return yield* Stream.runDrain(part.content)
            }
            if (Option.isSome(yield* Ref.get(created))) {
              return yield* new BadRequest({ code: "multiple_files", message: "Send one file per upload." })
            }
            const dataset = yield* datasets.upload(owner, {
              filename: part.name === "" ? undefined : part.name,
              contentType: part.contentType === "" ? undefined : part.contentType,
              name: yield* Ref.get(name),
              content: part.content
            })
            yield* Ref.set(created, Option.some(dataset))
          })
        ).pipe(
          Effect.catchTag("MultipartError", (error) => Effect.fail(invalidMultipart(error))),
          Effect.tapError(() =>
            Ref.get(created).pipe(
              Effect.flatMap(
                Option.match({
                  onNone: () => Effect.void,
                  onSome: (dataset) => datasets.remove(owner, dataset.id).pipe(Effect.ignore)
                })
              )
            )
          )
        )
        return yield* Ref.get(created).pipe(
          Effect.flatMap(
            Option.match({
              onSome: Effect.succeed,
              onNone: () =>
                Effect.fail(
                  new BadRequest({
                    code: "missing_file",
                    message: "The form has no `file` field with a file in it."
                  })
                )
            })
          )
        )
      })

    return handlers
      .handle("list", ({ urlParams }) =>
        Effect.flatMap(CurrentUser, (user) => datasets.list(user.id, urlParams))
      )
      .handle("upload", ({ payload }) => Effect.flatMap(CurrentUser, (user) => upload(user.id, payload)))
      .handle("get", ({ path }) => Effect.flatMap(CurrentUser, (user) => datasets.get(user.id, path.id)))
      .handle("rename", ({ path, payload }) =>
        Effect.flatMap(CurrentUser, (user) => datasets.rename(user.id, path.id, payload.name))
      )
      .handle("delete", ({ path }) =>
        Effect.flatMap(CurrentUser, (user) => datasets.remove(user.id, path.id))
      )
      .handle("preview", ({ path, urlParams }) =>
        Effect.flatMap(CurrentUser, (user) => datasets.preview(user.id, path.id, urlParams))
      )
  })
)
