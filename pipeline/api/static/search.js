// docvec's search page: keyboard shortcuts and clean URLs. The page works without it.
// "/" focuses the query box (unless you are typing in a field), Escape leaves it.
// On submit, empty fields are left out of the URL, so a shared link holds only what was asked.
"use strict";
(function () {
  function typing(target) {
    if (!target) return false;
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }
  document.addEventListener("keydown", function (event) {
    var box = document.getElementById("q");
    if (!box) return;
    if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey && !typing(event.target)) {
      event.preventDefault();
      box.focus();
      box.select();
    } else if (event.key === "Escape" && document.activeElement === box) {
      box.blur();
    }
  });
  var form = document.querySelector("form.search");
  if (!form) return;
  form.addEventListener("submit", function () {
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && field.name !== "q" && field.value === "") field.disabled = true;
    });
  });
  window.addEventListener("pageshow", function () {  // back to a page whose form was submitted
    Array.prototype.forEach.call(form.elements, function (field) { field.disabled = false; });
  });
})();
