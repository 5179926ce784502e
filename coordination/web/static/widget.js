// AZUREZO patient widget for Element (Matrix widget API, no inline script: strict CSP).
// 1. answer Element's "capabilities" request; 2. ask for an OpenID token ("get_openid");
// 3. POST it to the dashboard, which checks it with Synapse and returns the dossier (HTML, escaped).
(function () {
  "use strict";
  var main = document.getElementById("contenu");
  var state = document.getElementById("widget-etat");
  var patientId = main.getAttribute("data-patient");
  var params = new URLSearchParams(window.location.search);
  var widgetId = params.get("widgetId") || "";
  var parentOrigin = "*";
  try { if (params.get("parentUrl")) { parentOrigin = new URL(params.get("parentUrl")).origin; } } catch (e) { parentOrigin = "*"; }
  var requested = false;

  function say(text) { state.textContent = text; }

  function send(message) { window.parent.postMessage(message, parentOrigin); }

  function load(token) {
    fetch(window.location.pathname, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ openid_token: token })
    }).then(function (resp) {
      return resp.text().then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var content = doc.querySelector("main") || doc.body;
        main.replaceChildren.apply(main, Array.prototype.slice.call(content.childNodes));
      });
    }).catch(function () { say("Le dossier n'a pas pu être chargé : rechargez le widget."); });
  }

  function onCredentials(data) {
    if (data && data.state === "allowed" && data.access_token) { load(data.access_token); }
    else if (data && data.state === "blocked") { say("Element a refusé de confirmer votre identité : autorisez le widget puis rechargez-le."); }
    else { say("Confirmez dans Element que le widget peut vérifier votre identité."); }
  }

  window.addEventListener("message", function (event) {
    var msg = event.data;
    if (!msg || typeof msg !== "object" || event.source !== window.parent) { return; }
    if (parentOrigin !== "*" && event.origin !== parentOrigin) { return; }
    if (msg.api === "toWidget" && !msg.response) {
      var reply = Object.assign({}, msg, { response: {} });
      if (msg.action === "capabilities") { reply.response = { capabilities: [] }; }
      if (msg.action === "openid_credentials") { onCredentials(msg.data); }
      send(reply);
      if (msg.action === "capabilities" && !requested) {
        requested = true;
        send({ api: "fromWidget", widgetId: widgetId, requestId: "openid-" + Date.now(), action: "get_openid", data: {} });
      }
    } else if (msg.api === "fromWidget" && msg.action === "get_openid" && msg.response) {
      onCredentials(msg.response);
    }
  });
  if (window.parent === window) { say("Ce widget s'ouvre depuis un salon patient dans Element."); }
})();
