// Progressive enhancement only: every action also works as a plain link or form.
(function () {
  "use strict";

  // The user switcher submits as soon as a user is picked.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Drag a box on the scene photo to search that region.
  var frame = document.getElementById("photo");
  if (!frame) { return; }
  var rect = document.getElementById("drag-box");
  var natW = Number(frame.dataset.width), natH = Number(frame.dataset.height);
  var start = null;

  function point(ev) {
    var r = frame.getBoundingClientRect();
    return {
      x: Math.min(Math.max(ev.clientX - r.left, 0), r.width),
      y: Math.min(Math.max(ev.clientY - r.top, 0), r.height),
      w: r.width, h: r.height
    };
  }

  frame.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0 || ev.target.closest(".dot")) { return; }
    start = point(ev);
    frame.setPointerCapture(ev.pointerId);
    rect.hidden = false;
    rect.style.left = start.x + "px"; rect.style.top = start.y + "px";
    rect.style.width = "0px"; rect.style.height = "0px";
    ev.preventDefault();
  });

  frame.addEventListener("pointermove", function (ev) {
    if (!start) { return; }
    var p = point(ev);
    rect.style.left = Math.min(start.x, p.x) + "px";
    rect.style.top = Math.min(start.y, p.y) + "px";
    rect.style.width = Math.abs(p.x - start.x) + "px";
    rect.style.height = Math.abs(p.y - start.y) + "px";
  });

  function finish(ev) {
    if (!start) { return; }
    var p = point(ev), s = start;
    start = null;
    if (Math.abs(p.x - s.x) < 8 || Math.abs(p.y - s.y) < 8) { rect.hidden = true; return; }
    // the box goes to the server in pixels of the full-size photo
    var sx = natW / p.w, sy = natH / p.h;
    var box = [Math.min(s.x, p.x) * sx, Math.min(s.y, p.y) * sy,
               Math.max(s.x, p.x) * sx, Math.max(s.y, p.y) * sy]
      .map(function (v) { return Math.round(v); }).join(",");
    var params = new URLSearchParams({ box: box });
    if (frame.dataset.adj) { params.set("adj", frame.dataset.adj); }
    window.location.href = frame.dataset.searchUrl + "?" + params.toString();
  }
  frame.addEventListener("pointerup", finish);
  frame.addEventListener("pointercancel", function () { start = null; rect.hidden = true; });
})();
