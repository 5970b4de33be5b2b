import { ApiError } from "../api/client";

/** An API failure as words: the problem's title and detail, never raw JSON. */
export function ErrorMessage({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const title = error instanceof ApiError ? error.title : "Something went wrong";
  const detail = error instanceof ApiError ? error.detail : error instanceof Error ? error.message : "";
  return (
    <div className="error-box" role="alert">
      <strong>{title}</strong>
      {detail && <p>{detail}</p>}
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
