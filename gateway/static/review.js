// Review controls: call the public API, then reload the page once the projection has the decision. In a
// signed-in session every state-changing request carries the page's CSRF token.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content;
const sent = (headers) => (csrf ? { ...headers, "x-csrf-token": csrf } : headers);

document.addEventListener("click", async (event) => {
  if (event.target.closest("[data-sign-out]")) {
    await fetch("/sign-out", { method: "POST", headers: sent({}) });
    location.assign("/sign-in");
    return;
  }
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const box = button.closest(".review");
  const { a, b } = box.dataset;
  const action = button.dataset.action;
  let url = `/v1/candidates/${encodeURIComponent(a)}/${encodeURIComponent(b)}/${action}`;
  let body = { by: "web page" };
  if (action === "accept") {
    const [direction, edgeType] = box.querySelector("select").value.split("|");
    body = { ...body, edge_type: edgeType, direction };
  } else if (action === "merge") {
    url = `/v1/entities/${encodeURIComponent(button.dataset.from)}/merge`;
    body = { into: button.dataset.into, by: "web page" };
  }
  button.disabled = true;
  const response = await fetch(url, { method: "POST", headers: sent({ "content-type": "application/json" }), body: JSON.stringify(body) });
  const reply = await response.json();
  if (!response.ok) {
    button.disabled = false;
    const detail = Array.isArray(reply.detail) ? reply.detail.map((d) => d.msg).join("; ") : String(reply.detail);
    box.insertAdjacentHTML("beforeend", `<span class="message" role="alert">${detail.replace(/</g, "&lt;")}</span>`);
    return;
  }
  const target = button.dataset.redirect || location.pathname;
  location.assign(`${target}?after=${encodeURIComponent(reply.position)}`);
});
