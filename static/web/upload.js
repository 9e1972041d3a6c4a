// The upload page: send a chosen, dropped, pasted or webcam photo, show the upload's progress,
// then go to the result page (which follows the analysis). Without JavaScript the form still posts.
"use strict";
(() => {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("photo-input");
  const dropZone = document.getElementById("drop-zone");
  const progress = document.getElementById("progress");
  const error = document.getElementById("error");
  const maxBytes = Number(form.dataset.maxBytes);

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
    progress.hidden = true;
    form.classList.remove("busy");
  }

  function showProgress(message) {
    progress.textContent = message;
    progress.hidden = false;
    error.hidden = true;
  }

  function send(file, name) {
    if (!file) return;
    if (file.size > maxBytes) {
      showError(`The file is larger than ${form.dataset.maxSize}.`);
      return;
    }
    const data = new FormData(form); // carries the CSRF token
    data.set("image", file, name || file.name || "photo");
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) showProgress(`Uploading… ${Math.round((100 * event.loaded) / event.total)}%`);
    });
    request.addEventListener("load", () => {
      const body = request.response || {};
      if (request.status === 201 && body.url) {
        showProgress("Uploaded. Finding faces…");
        window.location.assign(body.url);
      } else if (request.status === 403) {
        showError("This page has expired. Reload it and try again.");
      } else {
        showError(body.error || `The upload failed (the server answered ${request.status}). Please try again.`);
      }
    });
    request.addEventListener("error", () =>
      showError("The upload failed: the server could not be reached. Check your connection and try again."),
    );
    form.classList.add("busy");
    showProgress("Uploading…");
    request.send(data);
  }

  input.addEventListener("change", () => send(input.files[0]));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(input.files[0]);
  });

  // Drop anywhere on the page.
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) dropZone.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    send(event.dataTransfer.files[0]);
  });

  document.addEventListener("paste", (event) => {
    const file = Array.from(event.clipboardData.files).find((f) => f.type.startsWith("image/"));
    if (file) send(file, file.name || "pasted.png");
  });

  // The webcam, where the browser offers it (secure pages only: HTTPS or localhost).
  const webcam = document.getElementById("webcam");
  const video = document.getElementById("webcam-video");
  const webcamButton = document.getElementById("webcam-button");
  let stream = null;

  function stopWebcam() {
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    webcam.hidden = true;
  }

  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    webcamButton.hidden = false;
    webcamButton.addEventListener("click", async () => {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
      } catch (failure) {
        showError(
          failure.name === "NotAllowedError"
            ? "The browser was not allowed to use the webcam."
            : `The webcam could not be used (${failure.message || failure.name}).`,
        );
        return;
      }
      video.srcObject = stream;
      webcam.hidden = false;
    });
    document.getElementById("webcam-cancel").addEventListener("click", stopWebcam);
    document.getElementById("webcam-capture").addEventListener("click", () => {
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      stopWebcam();
      canvas.toBlob((blob) => send(blob, "webcam.jpg"), "image/jpeg", 0.92);
    });
  }
})();
