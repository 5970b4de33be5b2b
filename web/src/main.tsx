import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode, Suspense, lazy } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Navigate, Route, Routes } from "react-router-dom";
import { ApiError } from "./api/client";
import { Layout } from "./components/Layout";
import { ToastProvider } from "./components/Toast";
import "./styles.css";

// Each screen is its own chunk; the first load carries only the frame and the screen shown.
const LoginPage = lazy(() => import("./auth/LoginPage"));
const WorkflowsPage = lazy(() => import("./workflows/WorkflowsPage"));
const WorkflowPage = lazy(() => import("./workflows/WorkflowPage"));
const ExecutionsPage = lazy(() => import("./executions/ExecutionsPage"));
const ExecutionPage = lazy(() => import("./executions/ExecutionPage"));
const ApprovalsPage = lazy(() => import("./approvals/ApprovalsPage"));
const EditorPage = lazy(() => import("./editor/EditorPage"));
const AnalyticsPage = lazy(() => import("./analytics/AnalyticsPage"));
const AgentsPage = lazy(() => import("./agents/AgentsPage"));
const AuditPage = lazy(() => import("./audit/AuditPage"));
const SettingsLayout = lazy(() => import("./settings/SettingsLayout"));
const UsersPage = lazy(() => import("./settings/UsersPage"));
const TeamsPage = lazy(() => import("./settings/TeamsPage"));
const TokensPage = lazy(() => import("./settings/TokensPage"));
const SecretsPage = lazy(() => import("./settings/SecretsPage"));
const ConnectionsPage = lazy(() => import("./settings/ConnectionsPage"));

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (count, err) => !(err instanceof ApiError && err.status >= 400 && err.status < 500) && count < 2,
      refetchOnWindowFocus: true,
    },
  },
});

function Loading() {
  return <div className="page-loading" aria-busy="true">Loading…</div>;
}

function NotFound() {
  return (
    <div className="empty">
      <h1>Nothing here</h1>
      <p>This address is not a page of opsflow.</p>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <ToastProvider>
        <BrowserRouter>
          <Suspense fallback={<Loading />}>
            <Routes>
              <Route path="/login" element={<LoginPage />} />
              <Route element={<Layout />}>
                <Route index element={<Navigate to="/workflows" replace />} />
                <Route path="/workflows" element={<WorkflowsPage />} />
                <Route path="/workflows/new" element={<EditorPage />} />
                <Route path="/workflows/:id" element={<WorkflowPage />} />
                <Route path="/workflows/:id/edit" element={<EditorPage />} />
                <Route path="/executions" element={<ExecutionsPage />} />
                <Route path="/executions/:id" element={<ExecutionPage />} />
                <Route path="/approvals" element={<ApprovalsPage />} />
                <Route path="/analytics" element={<AnalyticsPage />} />
                <Route path="/agents" element={<AgentsPage />} />
                <Route path="/audit" element={<AuditPage />} />
                <Route path="/settings" element={<SettingsLayout />}>
                  <Route index element={<Navigate to="/settings/tokens" replace />} />
                  <Route path="users" element={<UsersPage />} />
                  <Route path="teams" element={<TeamsPage />} />
                  <Route path="tokens" element={<TokensPage />} />
                  <Route path="secrets" element={<SecretsPage />} />
                  <Route path="connections" element={<ConnectionsPage />} />
                </Route>
                <Route path="*" element={<NotFound />} />
              </Route>
            </Routes>
          </Suspense>
        </BrowserRouter>
      </ToastProvider>
    </QueryClientProvider>
  </StrictMode>,
);
