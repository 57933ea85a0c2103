/* The invitation dialog's behaviour: no inline handlers (the page's CSP forbids them). */
(function () {
  "use strict";

  function each(list, action) {
    Array.prototype.forEach.call(list, action);
  }

  // "Cancel" and "Close": the CRM opened this page in a window of its own.
  each(document.querySelectorAll("[data-close]"), function (button) {
    button.addEventListener("click", function () {
      window.close();
    });
  });

  // "Choose" stays disabled while no participant is ticked.
  var form = document.getElementById("choose");
  if (form) {
    var choose = document.getElementById("choose-button");
    var boxes = form.querySelectorAll('input[name="recipient"]');
    var update = function () {
      var any = false;
      each(boxes, function (box) {
        if (box.checked && !box.disabled) { any = true; }
      });
      choose.disabled = !any;
    };
    each(boxes, function (box) { box.addEventListener("change", update); });
    update();
  }

  // One submission per page: a second click must not send the invitations twice.
  each(document.querySelectorAll("form"), function (each_form) {
    each_form.addEventListener("submit", function (event) {
      if (each_form.getAttribute("data-submitted")) {
        event.preventDefault();
        return;
      }
      each_form.setAttribute("data-submitted", "1");
      var busy = document.getElementById("busy");
      if (busy) { busy.hidden = false; }
    });
  });
}());
