import { ApiError, problemOf } from "../api/client";
import { signInFailure } from "./LoginPage";

describe("sign-in failure message", () => {
  it("says a wrong password once, without the generic 401 title", () => {
    const err = problemOf(401, { title: "Authentication required", detail: "wrong user name or password", status: 401 });
    const text = signInFailure(err);
    expect(text).toBe("Wrong user name or password.");
    expect(text).not.toMatch(/Authentication required/);
  });

  it("keeps another failure's own words as one sentence", () => {
    expect(signInFailure(new ApiError(429, "Too many requests", "too many failed sign-ins; try again in 60 s"))).toBe("Too many failed sign-ins; try again in 60 s.");
    expect(signInFailure(new ApiError(0, "The server cannot be reached", ""))).toBe("The server cannot be reached.");
  });
});
