// The result page: follow the analysis by polling its status, then reload to show the faces.
"use strict";
(() => {
  const result = document.getElementById("result");
  const STEP_OF_STAGE = { queued: 1, finding_faces: 1, predicting: 2 };

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
        show({ message: "This photo has been deleted." });
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
      document.getElementById("stage-message").textContent = "The connection was lost; trying again…";
    }
    window.setTimeout(poll, 1000);
  }

  if (!["done", "failed"].includes(result.dataset.stage)) window.setTimeout(poll, 500);
})();
