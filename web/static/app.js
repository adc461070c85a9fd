// Progressive enhancement only: every action also works as a plain link or form.
(function () {
  "use strict";

  // The user switcher submits as soon as a user is picked.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Drag a box on the scene photo to search that region. A mouse drags straight away; a
  // finger scrolls the page as anywhere else, and draws only in "Select an area" mode.
  var frame = document.getElementById("photo");
  if (!frame) { return; }
  var rect = document.getElementById("drag-box");
  var natW = Number(frame.dataset.width), natH = Number(frame.dataset.height);
  var start = null;
  var toggle = document.getElementById("select-area");
  var hint = document.getElementById("photo-hint");
  var hintText = hint ? hint.innerHTML : "";

  function setSelecting(on) {
    frame.classList.toggle("selecting", on);
    if (toggle) {
      toggle.setAttribute("aria-pressed", on ? "true" : "false");
      toggle.textContent = on ? "Cancel" : "Select an area";
    }
    if (hint) { hint.innerHTML = on ? "Drag across the photo around the thing you want." : hintText; }
  }
  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      setSelecting(!frame.classList.contains("selecting"));
    });
  }

  // The whole-look items light up their object's dot (and the other way round).
  function light(index, on) {
    document.querySelectorAll('[data-index="' + index + '"], .look-item[data-object="' + index + '"]')
      .forEach(function (el) { el.classList.toggle("lit", on); });
  }
  document.querySelectorAll(".look-item, a.dot").forEach(function (el) {
    var index = el.dataset.object !== undefined ? el.dataset.object : el.dataset.index;
    el.addEventListener("pointerenter", function () { light(index, true); });
    el.addEventListener("pointerleave", function () { light(index, false); });
  });

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
    if (ev.pointerType !== "mouse" && !frame.classList.contains("selecting")) { return; }
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
  frame.addEventListener("pointerover", function (ev) {
    if (ev.pointerType === "mouse") { frame.classList.add("mouse"); }
  });
})();
