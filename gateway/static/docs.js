// Starts Swagger UI on the gateway's OpenAPI document (a file, so the page needs no inline script).
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", persistAuthorization: true });
});
