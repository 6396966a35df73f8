// An API error as the user sees it: the server's message, never swallowed.

export function ErrorBox({ error, onRetry }: { error: string | null; onRetry?: () => void }) {
  if (!error) return null;
  return (
    <div class="error" role="alert" data-testid="error">
      <span class="error-text">{error}</span>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: preact.ComponentChildren }) {
  return <div class="empty">{children}</div>;
}
