from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.api.errors import api_path_not_found
from apps.metrics.views import metrics
from mairror.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", include("apps.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI's stylesheet draws its icons as data: URIs; no other page may load those.
    path("api/docs/", csp_update({"img-src": "data:"})(SpectacularSwaggerView.as_view(url_name="schema")), name="docs"),
    re_path(r"^api/", api_path_not_found),  # last under api/: every other URL there is a JSON 404
    path("telegram/", include("apps.telegram.urls")),
    path("admin/", admin.site.urls),
    path("", include("apps.web.urls")),
]

handler400 = "apps.api.errors.bad_request"
handler404 = "apps.api.errors.not_found"
handler500 = "apps.api.errors.server_error"
