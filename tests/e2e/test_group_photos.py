"""Group photos on the result page in real Chromium, through the real pipeline: every face gets a number badge
inside the photo, no two badges overlap, on a phone (390 x 844) and at 1280 px; the cards list the faces in
the same order with the same numbers, and tapping a card highlights its box (and tapping a badge, its card)."""

import re

import pytest
from playwright.sync_api import expect

from apps.predictions.models import FaceEstimate
from tests.e2e.support import LOADED_WIDTH, PHONE, family_photo, team_photo
from tests.support import PIPELINE_TIMEOUT_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)

RESULT_URL = re.compile(r"/r/[0-9a-f-]{36}$")
REACH = 6  # static/web/faces.js moves a badge at most this many of its heights from its box's corner
NEXT_FRAME = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
# Rectangles in CSS px of the viewport, and what each element says, for every box, badge and card at once.
LAYOUT = """() => {
    const rect = (element) => { const r = element.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; };
    const all = (selector) => [...document.querySelectorAll(selector)].map((element) => ({
        rect: rect(element), index: element.dataset.faceIndex, text: element.textContent.trim(),
        selected: element.classList.contains("selected"),
    }));
    return {
        photo: rect(document.querySelector(".photo img")),
        boxes: all(".photo .face-box"),
        badges: all(".photo .face-badge"),
        cards: all(".faces .face").map((card, n) => ({
            ...card, number: document.querySelectorAll(".faces .face-number")[n].textContent.trim(),
        })),
    };
}"""


def overlap(a, b) -> float:
    """The area two rectangles (x, y, width, height) share."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def in_corner(box, badge, photo) -> list[float]:
    """Where a badge sits in its box's top left corner, moved into the photo: where the server puts it."""
    x = min(max(box[0], photo[0]), photo[0] + photo[2] - badge[2])
    y = min(max(box[1], photo[1]), photo[1] + photo[3] - badge[3])
    return [x, y, badge[2], badge[3]]


def check_badges_and_cards(page, faces: int) -> dict:
    """Every badge inside the photo, near its own box and on no other badge; one card per face, in the badges'
    order with the same numbers. Returns the layout."""
    page.locator(".photo img").evaluate(LOADED_WIDTH)
    page.evaluate(NEXT_FRAME)  # laid out again since any change of size (a ResizeObserver callback)
    layout = page.evaluate(LAYOUT)
    photo, boxes, badges, cards = layout["photo"], layout["boxes"], layout["badges"], layout["cards"]
    numbers = [str(n) for n in range(1, faces + 1)]
    assert [badge["text"] for badge in badges] == numbers
    assert [card["number"] for card in cards] == numbers
    assert [card["index"] for card in cards] == [badge["index"] for badge in badges] == [b["index"] for b in boxes]
    for badge, box in zip(badges, boxes, strict=True):
        x, y, width, height = badge["rect"]
        assert photo[0] - 0.5 <= x and x + width <= photo[0] + photo[2] + 0.5, (badge, photo)
        assert photo[1] - 0.5 <= y and y + height <= photo[1] + photo[3] + 0.5, (badge, photo)
        corner = in_corner(box["rect"], badge["rect"], photo)
        assert abs(x - corner[0]) <= REACH * height and abs(y - corner[1]) <= REACH * height, (badge, box)
    for n, badge in enumerate(badges):
        for other in badges[:n]:
            assert overlap(badge["rect"], other["rect"]) < 0.5, (badge, other)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing sticks out
    return layout


def corners_collide(layout: dict) -> bool:
    """Whether two badges left in their boxes' corners would cover each other."""
    corners = [
        in_corner(box["rect"], badge["rect"], layout["photo"])
        for box, badge in zip(layout["boxes"], layout["badges"], strict=True)
    ]
    return any(overlap(a, b) > 0 for n, a in enumerate(corners) for b in corners[:n])


def selected(layout: dict, kind: str) -> list[str]:
    return [element["index"] for element in layout[kind] if element["selected"]]


@pytest.mark.parametrize(("make_photo", "faces"), [(team_photo, 12), (family_photo, 30)], ids=["12", "30"])
def test_a_group_photo_numbers_its_faces_on_a_phone_and_a_desktop(
    web, phone, desktop, utkface_dir, make_photo, faces, tmp_path, screenshot
):
    photo = tmp_path / "group.jpg"
    photo.write_bytes(make_photo(utkface_dir))
    phone.goto(web.url + "/")
    phone.set_input_files("#photo-input", photo)
    phone.wait_for_url(RESULT_URL)
    expect(phone.locator(".photo .face-badge")).to_have_count(faces, timeout=PIPELINE_TIMEOUT_SECONDS * 1000)
    assert FaceEstimate.objects.filter(upload_id=phone.url.rsplit("/", 1)[1]).count() == faces
    desktop.goto(phone.url)

    # On the phone, badges left in their boxes' corners would cover each other: the page moved some apart.
    assert corners_collide(check_badges_and_cards(phone, faces))
    screenshot(phone, "phone")
    check_badges_and_cards(desktop, faces)
    screenshot(desktop, "desktop")
    phone.set_viewport_size({"width": 844, "height": 390})  # turned sideways: laid out again
    check_badges_and_cards(phone, faces)
    phone.set_viewport_size(PHONE["viewport"])
    check_badges_and_cards(phone, faces)

    for page, act in ((phone, "tap"), (desktop, "click")):
        card = page.locator(".faces .face").nth(faces - 2)
        getattr(card, act)()
        layout = page.evaluate(LAYOUT)
        assert selected(layout, "boxes") == selected(layout, "badges") == selected(layout, "cards") == [str(faces - 2)]
        expect(card.locator(".face-number")).to_have_attribute("aria-pressed", "true")
        expect(page.locator(".photo .face-badge.selected")).to_be_in_viewport()
        screenshot(page, f"{act}-card")
        getattr(page.locator(".photo .face-badge").nth(2), act)()  # and from the photo to its card
        expect(page.locator(".faces .face.selected")).to_be_in_viewport()
        layout = page.evaluate(LAYOUT)
        assert selected(layout, "boxes") == selected(layout, "cards") == ["2"]
        assert page.locator(".face-number[aria-pressed=true]").count() == 1

    phone.goto(web.url + "/")  # "Your photos": its thumbnail, its faces, when
    listed = phone.locator(".recent-photo")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text(f"{faces} faces")
    expect(listed).to_contain_text("just now")
    assert listed.locator("img").evaluate(LOADED_WIDTH) == 128
    screenshot(phone, "your-photos")
