// Who is signed in and what they may do. The server enforces permissions; the UI only uses
// them to decide what to show and enable.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, call } from "../api/client";
import type { Me } from "../api/types";

export const ME_KEY = ["me"] as const;

export function useMe() {
  return useQuery<Me | null>({
    queryKey: ME_KEY,
    queryFn: async () => {
      try {
        return await call(api.GET("/api/v1/me"));
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return null;
        throw err;
      }
    },
    staleTime: 60_000,
    retry: false,
  });
}

/** Whether the signed-in user holds `permission` (e.g. `workflows:run`). */
export function useCan(permission: string): boolean {
  const { data } = useMe();
  return !!data && (data.permissions as string[]).includes(permission);
}

export function useLogout() {
  const client = useQueryClient();
  return async () => {
    await api.POST("/api/v1/auth/logout").catch(() => undefined);
    client.setQueryData(ME_KEY, null);
    client.removeQueries({ predicate: (q) => q.queryKey[0] !== ME_KEY[0] });
  };
}
