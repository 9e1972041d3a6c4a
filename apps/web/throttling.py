"""The upload page's rate limit on photos: per client address (``apps.ratelimits``)."""

from apps.ratelimits import UploadRatePerAddress


class PageUploadRatePerIp(UploadRatePerAddress):
    """Photos sent from the upload page (anonymous) from one client address."""

    scope = "page_upload_ip"
    rate_setting = "PAGE_UPLOAD_RATE_PER_IP"


def page_upload_wait(request) -> int | None:
    """None when this address may send a photo from the page now, else the seconds it has to wait."""
    return PageUploadRatePerIp().wait_for(request)
