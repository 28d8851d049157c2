import hashlib

from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path


def hello(request):
    return HttpResponse("Hello from Django")


def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse({"name": f.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                         "field": request.POST.get("field")})


def stream(request):
    return StreamingHttpResponse(f"chunk {i}\n" for i in range(int(request.GET.get("n", "5"))))


def file(request):
    return FileResponse(open(__file__, "rb"), content_type="text/plain")


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("", hello), path("upload", upload), path("stream", stream), path("file", file), path("boom", boom)]
