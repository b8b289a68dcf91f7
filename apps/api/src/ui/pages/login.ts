import { type Html, html } from "../html.ts";
import { page } from "../layout.ts";

/** The sign-in form; `problem` says why the last attempt was refused, `noOperators` that no admin key exists. */
export function loginPage({ problem, noOperators }: { problem?: string; noOperators: boolean }): Html {
  return page({
    title: "Sign in",
    viewer: null,
    body: html`<section class="login">
  <h1>Sign in</h1>
  ${noOperators ? html`<p class="error">No operator keys are configured: set <code>IX_ADMIN_KEYS</code> (<code>name:key</code> pairs) to use the dashboard.</p>` : ""}
  ${problem ? html`<p class="error" role="alert">${problem}</p>` : ""}
  <form method="post" action="/ui/login">
    <label for="key">Operator key (from <code>IX_ADMIN_KEYS</code>)</label>
    <input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
    <button type="submit">Sign in</button>
  </form>
  <p class="hint">Client keys (<code>IX_API_KEYS</code>) cannot use the dashboard.</p>
</section>`,
  });
}
