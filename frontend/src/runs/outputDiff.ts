// What changed between two outputs, for showing them side by side: each side split into runs of text that the
// other side shares and runs it does not. Model outputs are often one long line, so a line diff would mark the
// whole thing; this diffs words (and the whitespace between them) with the same Myers diff as prompt versions.
import { diffLines } from "../../../src/domain/TextDiff.ts"

export interface Segment {
  readonly text: string
  readonly changed: boolean
}

export interface SideBySide {
  readonly a: ReadonlyArray<Segment>
  readonly b: ReadonlyArray<Segment>
}

/** Past this many tokens on a side, whole lines are compared instead: cheaper, still readable. */
export const MAX_WORD_TOKENS = 4000

const tokenize = (text: string): ReadonlyArray<string> => text.match(/\s+|\S+/g) ?? []

/**
 * One token per diff "line": a whitespace token may hold "\n", so it is written as its JSON string after a
 * space — no word token contains a space, so the two kinds never collide.
 */
const encode = (tokens: ReadonlyArray<string>) =>
  tokens.map((token) => (/^\s/.test(token) ? ` ${JSON.stringify(token)}` : token)).join("\n")

const push = (segments: Array<Segment>, text: string, changed: boolean) => {
  const last = segments[segments.length - 1]
  if (last && last.changed === changed) segments[segments.length - 1] = { text: last.text + text, changed }
  else segments.push({ text, changed })
}

const lineTokens = (text: string) =>
  text === "" ? [] : text.split("\n").map((line, i) => (i === 0 ? line : `\n${line}`))

/** The two texts as segments: `changed` marks what is not in the other text. Concatenated, each side is its text. */
export const sideBySide = (a: string, b: string): SideBySide => {
  let tokensA = tokenize(a)
  let tokensB = tokenize(b)
  let encoded: [string, string]
  if (tokensA.length > MAX_WORD_TOKENS || tokensB.length > MAX_WORD_TOKENS) {
    tokensA = lineTokens(a)
    tokensB = lineTokens(b)
    // a line's leading "\n" is part of its token; compare lines without it
    encoded = [
      tokensA.map((t) => t.replace(/^\n/, "")).join("\n"),
      tokensB.map((t) => t.replace(/^\n/, "")).join("\n")
    ]
  } else encoded = [encode(tokensA), encode(tokensB)]
  const left: Array<Segment> = []
  const right: Array<Segment> = []
  let i = 0
  let j = 0
  for (const line of diffLines(encoded[0], encoded[1])) {
    if (line.op === "equal") {
      push(left, tokensA[i++]!, false)
      push(right, tokensB[j++]!, false)
    } else if (line.op === "delete") push(left, tokensA[i++]!, true)
    else push(right, tokensB[j++]!, true)
  }
  return { a: left, b: right }
}
