/** A JSON value, pretty-printed and scrollable; copyable as text. */
export function JsonView({ value, label }: { value: unknown; label?: string }) {
  const text = JSON.stringify(value ?? null, null, 2);
  return (
    <pre className="json" tabIndex={0} aria-label={label}>
      {text}
    </pre>
  );
}
