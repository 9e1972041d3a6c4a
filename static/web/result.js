// The result page: follow the analysis through its event stream (server-sent events), or by polling
// its status where the stream cannot be had, then reload to show the faces.
"use strict";
(() => {
  const result = document.getElementById("result");
  const STEP_OF_STAGE = { queued: 1, finding_faces: 1, predicting: 2 };
  const DELETED = "This photo has been deleted.";
  const LOST = "The connection was lost; trying again…";

  const deleteForm = document.getElementById("delete-form");
  if (deleteForm) {
    deleteForm.addEventListener("submit", (event) => {
      if (!window.confirm(deleteForm.dataset.confirm)) event.preventDefault();
    });
  }

  // A photo the server cannot show (unreadable, deleted) is left out rather than shown broken.
  const photo = document.querySelector(".photo img");
  const hidePhoto = () => (photo.closest(".photo").hidden = true);
  if (photo) {
    photo.addEventListener("error", hidePhoto);
    if (photo.complete && photo.naturalWidth === 0) hidePhoto();
  }

  function show(status) {
    document.getElementById("stage-message").textContent = status.message;
    const current = STEP_OF_STAGE[status.stage];
    document.querySelectorAll("#steps .step").forEach((step, index) => {
      step.classList.toggle("done", index < current);
      step.classList.toggle("current", index === current);
    });
  }

  async function poll() {
    try {
      const response = await fetch(result.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (response.status === 404) {
        show({ message: DELETED });
        return;
      }
      if (response.ok) {
        const status = await response.json();
        if (status.finished) {
          window.location.reload();
          return;
        }
        show(status);
      }
    } catch {
      document.getElementById("stage-message").textContent = LOST;
    }
    window.setTimeout(poll, 1000);
  }

  // EventSource reconnects by itself when a stream ends (the server ends each after a minute). A stream
  // refused outright (readyState CLOSED) or failing again and again with no event is given up for polling.
  function follow() {
    if (!window.EventSource) {
      window.setTimeout(poll, 500);
      return;
    }
    const source = new EventSource(result.dataset.eventsUrl);
    let failures = 0;
    source.addEventListener("stage", (event) => {
      failures = 0;
      const status = JSON.parse(event.data);
      if (status.finished) {
        source.close();
        window.location.reload();
        return;
      }
      show(status);
    });
    source.addEventListener("gone", (event) => {
      source.close();
      show({ message: JSON.parse(event.data).message || DELETED });
    });
    source.addEventListener("error", () => {
      failures += 1;
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        window.setTimeout(poll, 500);
      } else if (failures > 1) {
        document.getElementById("stage-message").textContent = LOST;
      }
    });
  }

  if (!["done", "failed"].includes(result.dataset.stage)) follow();
})();
