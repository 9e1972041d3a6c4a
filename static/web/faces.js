// The faces of a result. Each box's number badge is placed where it stays inside the photo and covers no
// other badge, once the photo has its size and again whenever that changes; the server can only put each
// in its box's corner, not knowing how large the photo is shown. Tapping a face's card highlights its box
// and badge, tapping a box or badge highlights its card.
"use strict";
(() => {
  const figure = document.querySelector(".photo");
  const overlay = figure && figure.querySelector(".face-boxes");
  if (!overlay) return;
  const photo = figure.querySelector("img");
  const badges = [...overlay.querySelectorAll(".face-badge")];
  const GAP = 2; // px between a moved badge and the one it made way for
  const REACH = 6; // a badge moves at most this many of its heights from its box's corner

  const ofFace = (selector, index) => document.querySelector(`${selector}[data-face-index="${index}"]`);
  const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  const within = (spot, width, height) => ({
    ...spot,
    x: Math.max(0, Math.min(spot.x, width - spot.w)),
    y: Math.max(0, Math.min(spot.y, height - spot.h)),
  });

  // The free spot nearest to ``corner`` (in the photo), beside the badges already placed: right of, left of,
  // below or above one of them, or both; null if every spot within reach is taken.
  function nearestFree(corner, placed, width, height) {
    const free = (spot) => !placed.some((other) => overlaps(spot, other));
    if (free(corner)) return corner;
    const reach = REACH * corner.h;
    const near = (values, start) => values.filter((value) => Math.abs(value - start) <= reach);
    const xs = near([corner.x, ...placed.flatMap((o) => [o.x + o.w + GAP, o.x - corner.w - GAP])], corner.x);
    const ys = near([corner.y, ...placed.flatMap((o) => [o.y + o.h + GAP, o.y - corner.h - GAP])], corner.y);
    const spots = xs.flatMap((x) => ys.map((y) => within({ ...corner, x, y }, width, height)));
    const distance = (spot) => (spot.x - corner.x) ** 2 + (spot.y - corner.y) ** 2;
    return spots.sort((a, b) => distance(a) - distance(b)).find(free) || null;
  }

  // In the faces' order, each badge takes the nearest free spot to its box's corner: the first ones keep theirs.
  function placeBadges() {
    const { width, height } = photo.getBoundingClientRect();
    if (!width || !height) return; // not shown (yet)
    const placed = [];
    for (const badge of badges) {
      const box = ofFace(".face-box", badge.dataset.faceIndex).parentNode;
      const corner = within(
        { x: box.x.baseVal.value, y: box.y.baseVal.value, w: badge.offsetWidth, h: badge.offsetHeight },
        width,
        height,
      );
      const spot = nearestFree(corner, placed, width, height) || corner;
      placed.push(spot);
      const slot = badge.parentNode;
      for (const [name, value] of Object.entries({ x: spot.x, y: spot.y, width: spot.w, height: spot.h })) {
        slot.setAttribute(name, value);
      }
    }
  }

  function select(index, reveal) {
    const again = figure.dataset.selected === index;
    document.querySelectorAll(".face-box.selected, .face-badge.selected, .face.selected").forEach((element) => {
      element.classList.remove("selected");
    });
    document.querySelectorAll('.face-number[aria-pressed="true"]').forEach((button) => {
      button.setAttribute("aria-pressed", "false");
    });
    figure.classList.toggle("has-selection", !again);
    if (again) {
      delete figure.dataset.selected; // a second tap on the same face clears the highlight
      return;
    }
    figure.dataset.selected = index;
    const card = ofFace(".face", index);
    [ofFace(".face-box", index), ofFace(".face-badge", index), card].forEach((element) => {
      element.classList.add("selected");
    });
    card.querySelector(".face-number").setAttribute("aria-pressed", "true");
    reveal.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  figure.classList.add("selectable");
  overlay.addEventListener("click", (event) => {
    const face = event.target.closest("[data-face-index]");
    if (face) select(face.dataset.faceIndex, ofFace(".face", face.dataset.faceIndex));
  });
  document.querySelectorAll(".face[data-face-index]").forEach((card) => {
    card.addEventListener("click", () => select(card.dataset.faceIndex, ofFace(".face-badge", card.dataset.faceIndex)));
  });

  new ResizeObserver(placeBadges).observe(photo);
  document.fonts.ready.then(placeBadges);
})();
