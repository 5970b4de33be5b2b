// The run form, generated from a workflow's declared params: one field per param, with its
// type, choices, default, whether it is required and its help; errors shown at the field.
import type { ParamSpec } from "../api/types";

export type ParamValues = Record<string, string | boolean>;
export type FieldErrors = Record<string, string>;

/** The form's first values: each param's default (text for inputs, booleans for checkboxes). */
export function initialValues(params: Record<string, ParamSpec>): ParamValues {
  const values: ParamValues = {};
  for (const [name, spec] of Object.entries(params)) {
    if (spec.type === "boolean") values[name] = spec.default === true;
    else values[name] = spec.default === null || spec.default === undefined ? "" : String(spec.default);
  }
  return values;
}

function choiceValue(spec: ParamSpec, text: string): string | number | boolean {
  const match = (spec.choices ?? []).find((c) => String(c) === text);
  return match ?? text;
}

/**
 * Checks the values as the server would and converts them to the run body's params.
 * Returns `errors` keyed by param name (empty when the form may be sent).
 */
export function checkParams(params: Record<string, ParamSpec>, values: ParamValues): { errors: FieldErrors; body: Record<string, unknown> } {
  const errors: FieldErrors = {};
  const body: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(params)) {
    const raw = values[name];
    const kind = spec.type ?? "string";
    if (kind === "boolean") {
      body[name] = raw === true;
      continue;
    }
    const text = typeof raw === "string" ? raw : "";
    if (text.trim() === "") {
      if (spec.required && (spec.default === null || spec.default === undefined)) errors[name] = "Required: enter a value.";
      continue;
    }
    if (kind === "integer" || kind === "number") {
      const n = Number(text);
      if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) {
        errors[name] = kind === "integer" ? "Enter a whole number." : "Enter a number.";
        continue;
      }
      if (spec.minimum !== null && spec.minimum !== undefined && n < spec.minimum) {
        errors[name] = `Must be at least ${spec.minimum}.`;
        continue;
      }
      if (spec.maximum !== null && spec.maximum !== undefined && n > spec.maximum) {
        errors[name] = `Must be at most ${spec.maximum}.`;
        continue;
      }
      body[name] = n;
      continue;
    }
    if (kind === "choice") {
      if (!(spec.choices ?? []).some((c) => String(c) === text)) {
        errors[name] = `Pick one of: ${(spec.choices ?? []).join(", ")}.`;
        continue;
      }
      body[name] = choiceValue(spec, text);
      continue;
    }
    if (spec.pattern) {
      let ok = true;
      try {
        ok = new RegExp(`^(?:${spec.pattern})$`).test(text);
      } catch {
        ok = true; // a pattern JavaScript cannot read is left to the server
      }
      if (!ok) {
        errors[name] = `Does not match the expected form (${spec.pattern}).`;
        continue;
      }
    }
    body[name] = text;
  }
  return { errors, body };
}

/** Maps the server's `errors` ([{loc: "params.who", msg}]) onto the fields. */
export function serverFieldErrors(errors: { loc: string; msg: string }[]): { fields: FieldErrors; other: string[] } {
  const fields: FieldErrors = {};
  const other: string[] = [];
  for (const e of errors) {
    const m = /^(?:body\.)?params\.([^.[\]]+)/.exec(e.loc);
    if (m && m[1]) fields[m[1]] = e.msg;
    else other.push(e.loc ? `${e.loc}: ${e.msg}` : e.msg);
  }
  return { fields, other };
}

export function ParamsForm({
  params,
  values,
  errors,
  onChange,
  idPrefix = "param",
}: {
  params: Record<string, ParamSpec>;
  values: ParamValues;
  errors: FieldErrors;
  onChange: (name: string, value: string | boolean) => void;
  idPrefix?: string;
}) {
  const names = Object.keys(params);
  if (names.length === 0) return <p className="muted">This workflow takes no parameters.</p>;
  return (
    <div className="params-form">
      {names.map((name) => {
        const spec = params[name]!;
        const id = `${idPrefix}-${name}`;
        const error = errors[name];
        const help = spec.description ? `${id}-help` : undefined;
        const describedBy = [help, error ? `${id}-error` : undefined].filter(Boolean).join(" ") || undefined;
        const required = !!spec.required && (spec.default === null || spec.default === undefined);
        const kind = spec.type ?? "string";
        const value = values[name];
        let control;
        if (kind === "boolean") {
          control = (
            <input id={id} type="checkbox" checked={value === true} onChange={(e) => onChange(name, e.target.checked)} aria-describedby={describedBy} />
          );
        } else if (kind === "choice") {
          control = (
            <select id={id} value={typeof value === "string" ? value : ""} onChange={(e) => onChange(name, e.target.value)} aria-invalid={!!error} aria-describedby={describedBy} required={required}>
              {!required && spec.default === undefined && <option value="">—</option>}
              {required && value === "" && <option value="">Choose…</option>}
              {(spec.choices ?? []).map((c) => (
                <option key={String(c)} value={String(c)}>
                  {String(c)}
                </option>
              ))}
            </select>
          );
        } else {
          control = (
            <input
              id={id}
              type={spec.secret ? "password" : kind === "string" ? "text" : "text"}
              inputMode={kind === "integer" ? "numeric" : kind === "number" ? "decimal" : undefined}
              value={typeof value === "string" ? value : ""}
              onChange={(e) => onChange(name, e.target.value)}
              aria-invalid={!!error}
              aria-describedby={describedBy}
              aria-required={required}
              autoComplete="off"
            />
          );
        }
        return (
          <div key={name} className={`field${kind === "boolean" ? " field-check" : ""}${error ? " has-error" : ""}`}>
            <label htmlFor={id}>
              {name}
              {required && <span className="required" aria-hidden="true"> *</span>}
              {required && <span className="visually-hidden"> (required)</span>}
              <span className="muted small"> {kind}</span>
            </label>
            {control}
            {spec.description && (
              <small id={help} className="muted">
                {spec.description}
              </small>
            )}
            {error && (
              <small id={`${id}-error`} className="field-error" role="alert">
                {error}
              </small>
            )}
          </div>
        );
      })}
    </div>
  );
}
