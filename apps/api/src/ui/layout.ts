import { type Html, html, type Interpolation } from "./html.ts";

/** Who is looking: a signed-in operator, or anyone (the API runs without keys). */
export interface Viewer {
  /** The operator's name from IX_ADMIN_KEYS; null on an open dashboard. */
  operator: string | null;
  /** The token every form of this viewer carries. */
  csrf: string;
}

/** A hidden field with the viewer's CSRF token: every POST form includes it. */
export function csrfField(viewer: Viewer): Html {
  return html`<input type="hidden" name="csrf" value="${viewer.csrf}">`;
}

/** The page shell: navigation, who is signed in (or that the dashboard is open), the content. */
export function page({ title, viewer, body }: { title: string; viewer: Viewer | null; body: Interpolation }): Html {
  const who =
    viewer === null
      ? ""
      : viewer.operator === null
        ? html`<span class="open" title="Set IX_ADMIN_KEYS (and IX_API_KEYS) to require sign-in">open: the API runs without keys (loopback only)</span>`
        : html`<span>signed in as <b>${viewer.operator}</b></span>
            <form method="post" action="/ui/logout" class="inline">${csrfField(viewer)}<button class="link">sign out</button></form>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · ix</title>
<link rel="stylesheet" href="/ui/ui.css">
</head>
<body>
<header>
  <a class="brand" href="/ui">ix</a>
  ${viewer === null ? "" : html`<nav><a href="/ui">Overview</a><a href="/ui/jobs">Jobs</a><a href="/ui/jobs?status=error">Failed</a></nav>`}
  <div class="who">${who}</div>
</header>
<main>
${body}
</main>
</body>
</html>
`;
}

/** A job status as a coloured label. */
export function statusBadge(status: string): Html {
  return html`<span class="status status-${status}">${status}</span>`;
}

/** A short page that says one thing (not found, refused, done), with a way on. */
export function messagePage({ title, viewer, message, back }: { title: string; viewer: Viewer | null; message: Interpolation; back?: { href: string; label: string } }): Html {
  return page({
    title,
    viewer,
    body: html`<h1>${title}</h1><p class="message">${message}</p>${back ? html`<p><a href="${back.href}">${back.label}</a></p>` : ""}`,
  });
}
