// Reading our workflow JSON Schema (GET /api/v1/schema/workflow) for the editor: which keys a
// mapping takes at a place in the document, what a key means, and which values it allows.
// A place is a path of keys from the top; a list item is "-" and, for steps and triggers, the
// item's `type` picks the definition (the schema's discriminator).

export type JsonSchema = {
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  type?: string | string[];
  description?: string;
  title?: string;
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  required?: string[];
  examples?: unknown[];
  discriminator?: { propertyName: string; mapping: Record<string, string> };
  minimum?: number;
  maximum?: number;
};

/** One step of a path: a key, or a list item with the `type` it declares (if any). */
export type PathPart = { key: string } | { item: true; type: string | null };

export interface FieldDoc {
  name: string;
  description: string;
  type: string;
  required: boolean;
  values: string[];
  default: unknown;
  schema: JsonSchema;
}

export class SchemaDocs {
  constructor(readonly root: JsonSchema) {}

  /** Follows `$ref`s and a nullable `anyOf` ([X, null] -> X). */
  resolve(node: JsonSchema | undefined): JsonSchema | undefined {
    let n = node;
    for (let i = 0; n && i < 20; i++) {
      if (n.$ref) {
        const name = n.$ref.replace("#/$defs/", "");
        const target = this.root.$defs?.[name];
        // Keep the referring node's description (Pydantic puts it beside the $ref).
        n = target ? { ...target, description: n.description ?? target.description, default: n.default ?? target.default } : undefined;
        continue;
      }
      const alts = n.anyOf?.filter((a) => a.type !== "null");
      if (alts && alts.length === 1 && !n.properties) {
        n = { ...alts[0], description: n.description ?? alts[0]!.description, default: n.default };
        continue;
      }
      return n;
    }
    return n;
  }

  /** The schema of the list item, picking the variant the item's `type` names. */
  private item(list: JsonSchema, type: string | null): JsonSchema | undefined {
    const items = this.resolve(list.items);
    if (!items) return undefined;
    if (items.discriminator && type) {
      const ref = items.discriminator.mapping[type];
      if (ref) return this.resolve({ $ref: ref });
    }
    return items.oneOf || items.anyOf ? items : items;
  }

  /** The schema at `path`, or undefined where the schema says nothing. */
  at(path: PathPart[]): JsonSchema | undefined {
    let node = this.resolve(this.root);
    for (const part of path) {
      if (!node) return undefined;
      if ("item" in part) {
        node = node.items ? this.item(node, part.type) : undefined;
        continue;
      }
      const direct = node.properties?.[part.key];
      if (direct) {
        node = this.resolve(direct);
        continue;
      }
      const pattern = node.patternProperties ? Object.entries(node.patternProperties).find(([re]) => new RegExp(re).test(part.key)) : undefined;
      if (pattern) node = this.resolve(pattern[1]);
      else if (node.additionalProperties && typeof node.additionalProperties === "object") node = this.resolve(node.additionalProperties);
      else return undefined;
    }
    return node;
  }

  /** The keys a mapping at `path` takes, in the schema's order, with their docs. For a list
   *  item whose type is not written yet, the keys every variant shares (and `type`). */
  fields(path: PathPart[]): FieldDoc[] {
    const node = this.at(path);
    if (!node) return [];
    const variants = node.properties ? [node] : (node.oneOf ?? node.anyOf ?? []).map((v) => this.resolve(v)).filter((v): v is JsonSchema => !!v?.properties);
    if (variants.length === 0) return [];
    const first = variants[0]!;
    const names = Object.keys(first.properties!).filter((k) => variants.every((v) => v.properties && k in v.properties));
    return names.map((name) => this.field(first, name));
  }

  /** The `type` values a list at `path` takes (steps: script, http…), from its discriminator. */
  itemTypes(path: PathPart[]): string[] {
    const items = this.resolve(this.at(path)?.items);
    return items?.discriminator ? Object.keys(items.discriminator.mapping) : [];
  }

  /** The doc of `key` in the mapping at `path`. */
  fieldAt(path: PathPart[], key: string): FieldDoc | undefined {
    const node = this.at(path);
    if (node?.properties?.[key]) return this.field(node, key);
    return this.fields(path).find((f) => f.name === key);
  }

  private field(parent: JsonSchema, name: string): FieldDoc {
    const raw = parent.properties![name]!;
    const schema = this.resolve(raw) ?? {};
    return {
      name,
      description: raw.description ?? schema.description ?? "",
      type: typeName(schema, this),
      required: parent.required?.includes(name) ?? false,
      values: valuesOf(schema, this),
      default: raw.default ?? schema.default,
      schema,
    };
  }
}

/** The values a field allows when they are a closed set (enum, const, boolean). */
export function valuesOf(schema: JsonSchema, docs: SchemaDocs): string[] {
  const s = docs.resolve(schema) ?? schema;
  if (s.enum) return s.enum.map(String);
  if (s.const !== undefined) return [String(s.const)];
  if (s.type === "boolean") return ["true", "false"];
  if (s.anyOf) return s.anyOf.flatMap((a) => valuesOf(a, docs));
  return [];
}

/** A short type name for people: text, integer, number, yes/no, list, mapping, one of a|b. */
export function typeName(schema: JsonSchema, docs: SchemaDocs): string {
  const s = docs.resolve(schema) ?? schema;
  if (s.enum) return `one of ${s.enum.join(", ")}`;
  if (s.const !== undefined) return String(s.const);
  if (s.anyOf) return [...new Set(s.anyOf.filter((a) => a.type !== "null").map((a) => typeName(a, docs)))].join(" or ");
  switch (s.type) {
    case "string":
      return "text";
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return "true/false";
    case "array":
      return "list";
    case "object":
      return "mapping";
    default:
      return s.oneOf ? "one of several forms" : "any";
  }
}

/** The path of keys that leads to line `line` (0-based) at `indent` columns, read from the
 *  indentation of the lines above it (works while the document does not parse yet, as people
 *  type). List items carry their `type:` value, found among the item's own lines. */
export function pathAt(lines: string[], line: number, indent: number): PathPart[] {
  const path: PathPart[] = [];
  let cur = indent;
  let compactSeq = false; // a `- item` at the same indent as its parent key (`steps:\n- id: a`)
  for (let j = line - 1; j >= 0 && (cur > 0 || compactSeq); j--) {
    const text = lines[j]!;
    const m = /^( *)((?:- +)?)(.*)$/.exec(text)!;
    const body = m[3]!;
    if (body.trim() === "" || body.trimStart().startsWith("#")) continue;
    const ind = m[1]!.length;
    const dash = m[2]!.length;
    const content = ind + dash;
    if (dash && content <= cur && ind < cur) {
      // Inside this list item: the keys of its mapping start at `content`.
      path.unshift({ item: true, type: itemType(lines, j, content) });
      cur = ind;
      compactSeq = true;
      continue;
    }
    const key = /^([A-Za-z0-9_.-]+|"[^"]*"|'[^']*'):(\s|$)/.exec(body);
    if (!key) continue;
    if (ind < cur || (compactSeq && ind === cur && !dash)) {
      const k = key[1]!.replace(/^["']|["']$/g, "");
      path.unshift({ key: k });
      cur = ind;
      compactSeq = false;
      if (ind === 0) break;
    }
  }
  return path;
}

/** The `type:` of the list item that starts at line `start` (its keys at column `content`). */
export function itemType(lines: string[], start: number, content: number): string | null {
  for (let j = start; j < lines.length; j++) {
    const text = lines[j]!;
    if (j > start) {
      const ind = /^ */.exec(text)![0].length;
      if (text.trim() && !text.trimStart().startsWith("#") && ind < content) break;
    }
    const m = /^ *(?:- +)?type:\s*["']?([A-Za-z0-9_-]+)/.exec(text);
    if (m && (j === start || /^ */.exec(text)![0].length === content)) return m[1]!;
  }
  return null;
}
