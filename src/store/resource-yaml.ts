/**
 * Reading resources from YAML text, as `weft apply -f` does: a file may hold several documents
 * (`---`). All problems of a file are collected and reported together, each with file:line and
 * field path; on any problem nothing is returned, so nothing is half-applied.
 */
import { type Document, isNode, isScalar, LineCounter, type Node, parseAllDocuments } from 'yaml';
import {
  describeResource,
  type FieldPath,
  formatFieldPath,
  type Resource,
  validateResource,
} from './resource.js';
import { type ResourceProblem, ValidationError } from './store-error.js';

/**
 * Parses every document of `text` (named `file` in messages) into validated, frozen resources, in
 * file order. Empty documents are skipped. Throws a ValidationError listing every problem as
 * `file:line: field.path: message`; the same resource (kind, namespace, name) twice is a problem.
 */
export function parseResourcesYaml(file: string, text: string): Resource[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const problems: ResourceProblem[] = [];
  const lineOf = (offset: number | undefined) =>
    offset === undefined ? undefined : lines.linePos(offset).line;
  const out: Resource[] = [];
  const seen = new Map<string, number | undefined>();
  // parseAllDocuments returns an EmptyStream (an array with no documents) for empty text.
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    // A syntax error usually cascades into more; the first one of a document is the useful one.
    const [syntax] = doc.errors;
    if (syntax) {
      problems.push({ file, line: lineOf(syntax.pos[0]), path: '', message: syntax.message });
      continue;
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    const docLine = lineOf(doc.contents.range?.[0]);
    const v = validateResource(doc.toJS({ maxAliasCount: 100 }));
    if (!v.ok) {
      for (const p of v.problems)
        problems.push({
          file,
          line: lineOf(nodeAt(doc, p.path)?.range?.[0]) ?? docLine,
          ...pathAndMessage(p),
        });
      continue;
    }
    const id = describeResource(v.resource);
    if (seen.has(id)) {
      problems.push({
        file,
        line: docLine,
        path: '',
        message: `${id} is defined twice (first on line ${seen.get(id)})`,
      });
      continue;
    }
    seen.set(id, docLine);
    out.push(v.resource);
  }
  if (problems.length > 0) throw new ValidationError(problems);
  return out;
}

function pathAndMessage(p: { path: FieldPath; message: string }): { path: string; message: string } {
  return { path: formatFieldPath(p.path), message: p.message };
}

/** The node at `path`, or the nearest ancestor that exists (a missing field points at its parent). */
function nodeAt(doc: Document, path: FieldPath): Node | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node)) return node;
  }
  return undefined;
}
