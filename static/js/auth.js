// Sign-in pages: download the backup codes as a text file (no inline script: CSP).
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-download-codes]");
    if (!button) { return; }
    var list = document.querySelector("[data-codes]");
    if (!list) { return; }
    var codes = Array.prototype.map.call(list.querySelectorAll("li"), function (li) {
      return li.textContent.trim();
    });
    var text = "Admin Console backup codes (" + window.location.host + ")\n" +
      "Each code works once.\n\n" + codes.join("\n") + "\n";
    var url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    var link = document.createElement("a");
    link.href = url;
    link.download = button.getAttribute("data-download-codes") || "backup-codes.txt";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    button.textContent = "Downloaded";
  });
})();
