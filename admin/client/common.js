// What every signed-in admin page uses: finding and making elements, and
// POSTs that carry the session's CSRF token (the admin API refuses a POST
// without it).
export const $ = (id) => document.getElementById(id);

export const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};

let csrf = '';

// The token from `GET /admin/api/session`, for the POSTs that follow.
export function setCsrf(token) {
  csrf = token;
}

export function post(url, body) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}
