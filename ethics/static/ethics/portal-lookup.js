// Suggestions for the sponsor and hospital boxes (ethics/portal/lookups.py): as the PI types, the names that
// contain the text are fetched and offered in the box's list. Without this script the box still takes a whole
// name or credit code.
(function () {
  "use strict";
  function attach(input) {
    var list = document.getElementById(input.getAttribute("list"));
    var url = input.getAttribute("data-lookup-url");
    var timer = null;
    var asked = "";
    function fill(labels) {
      list.replaceChildren.apply(list, labels.map(function (label) {
        var option = document.createElement("option");
        option.value = label;
        return option;
      }));
    }
    function ask() {
      var text = input.value.trim();
      if (!text || text === asked) {
        return;
      }
      asked = text;
      fetch(url + "?q=" + encodeURIComponent(text), {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) { return response.ok ? response.json() : {results: []}; })
        .then(function (data) { if (asked === text) { fill(data.results || []); } })
        .catch(function () { /* the box still takes a whole name or code */ });
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 200);
    });
    input.addEventListener("focus", ask);
  }
  document.querySelectorAll("input[data-lookup-url]").forEach(attach);
})();
