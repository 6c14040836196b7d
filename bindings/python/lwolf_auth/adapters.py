"""`requests` and `httpx` authentication with a client's token."""

from .errors import InvalidArgument

def _token_for(client, method, url):
    """The headers for a request to ``url``, or None when the token must not go there: the
    adapters act only on requests to their client's API origins (https, or http to loopback),
    and leave any other request as it is."""
    try:
        return client.auth_headers(method, url)
    except InvalidArgument:
        return None


def _send_again(client, request_url, authorization, status, headers):
    """Whether a request that carried our ``authorization`` to ``request_url`` and was
    answered ``status`` should be sent once more, and what that took: a DPoP nonce the
    server asked for, or the token renewed by the API's rules (bounded: at most once per 30 s
    for the identity and API, as the library's own requests). A request that carried no token
    of ours (a redirect to another host strips it), or went to another origin, is never sent
    again, and costs no token."""
    if status not in (401, 403) or not authorization:
        return False
    try:
        nonce = headers.get("DPoP-Nonce")
        if (status == 401 and nonce and authorization.startswith("DPoP ")
                and "use_dpop_nonce" in headers.get("WWW-Authenticate", "")):
            # The origin check, without a renewal (status 0 never renews).
            client.reject_token_at(request_url, 0, authorization)
            client.dpop_nonce(request_url, nonce)
            return True
        return client.reject_token_at(request_url, status, authorization)
    except InvalidArgument:
        return False


try:
    import requests as _requests
except ImportError:  # pragma: no cover - requests is optional
    _requests = None


if _requests is not None:

    class RequestsAuth(_requests.auth.AuthBase):
        """``requests`` authentication with a ``Client``'s token: ``Authorization`` (and, for
        a DPoP-bound token, a ``DPoP`` proof) on requests to the client's API origins, and on
        no others; a 401 (or a Back Office API's 403) to such a request renews the token and
        sends it once more (at most once per 30 s for the identity and API).

            session.get(url, auth=lwolf_auth.RequestsAuth(client))
        """

        def __init__(self, client):
            self.client = client

        def __call__(self, request):
            headers = _token_for(self.client, request.method, request.url)
            if headers is not None:
                request.headers.update(headers)
                request.register_hook("response", self._on_response)
            return request

        def _on_response(self, response, **kwargs):
            # Also called for the responses of redirects (requests copies the hooks): the
            # request is then the redirect's, without our token if it left the origin.
            request = response.request
            if getattr(request, "_lwolf_resent", False):
                return response
            authorization = request.headers.get("Authorization", "")
            if not _send_again(self.client, request.url, authorization,
                               response.status_code, response.headers):
                return response
            response.content  # read it, so the connection can be reused
            response.close()
            again = request.copy()
            again.headers.update(self.client.auth_headers(again.method, again.url))
            again._lwolf_resent = True
            resent = response.connection.send(again, **kwargs)
            resent.history.append(response)
            resent.request = again
            return resent

else:  # pragma: no cover

    class RequestsAuth:
        def __init__(self, client):
            raise ImportError("RequestsAuth needs the requests package (pip install requests)")


try:
    import httpx as _httpx
except ImportError:  # pragma: no cover - httpx is optional
    _httpx = None


async def _in_thread(fn, *args):
    """``fn(*args)`` on a worker thread, awaited: the library's calls block (a token fetch
    waits on the network), and the event loop must keep turning meanwhile. anyio's threads
    where anyio is (httpx's own dependency: asyncio and trio alike), else asyncio's."""
    try:
        from anyio import to_thread
    except ImportError:  # pragma: no cover - httpx brings anyio
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args))
    return await to_thread.run_sync(lambda: fn(*args))


if _httpx is not None:

    class HttpxAuth(_httpx.Auth):
        """``httpx`` authentication with a ``Client``'s token, for ``httpx.Client`` and
        ``httpx.AsyncClient`` alike: ``Authorization`` (and a ``DPoP`` proof for a DPoP-bound
        token) on requests to the client's API origins, and on no others; a 401 (or a Back
        Office API's 403) to such a request renews the token and sends it once more (at most
        once per 30 s). With an ``AsyncClient`` the library's calls (a token fetch, a renewal)
        run on a worker thread, so the event loop keeps turning while they wait.

            httpx.get(url, auth=lwolf_auth.HttpxAuth(client))
            async with httpx.AsyncClient(auth=lwolf_auth.HttpxAuth(client)) as http:
                await http.get(url)
        """

        def __init__(self, client):
            self.client = client

        def auth_flow(self, request):
            url = str(request.url)
            headers = _token_for(self.client, request.method, url)
            if headers is None:
                yield request
                return
            request.headers.update(headers)
            response = yield request
            # After redirects, the response is the last hop's: judged by what that request
            # carried (httpx strips our token when a redirect leaves the origin).
            final = response.request
            if _send_again(self.client, str(final.url), final.headers.get("Authorization", ""),
                           response.status_code, response.headers):
                request.headers.update(self.client.auth_headers(request.method, url))
                yield request

        async def async_auth_flow(self, request):
            # auth_flow's steps, each call of the library awaited on a worker thread.
            url = str(request.url)
            headers = await _in_thread(_token_for, self.client, request.method, url)
            if headers is None:
                yield request
                return
            request.headers.update(headers)
            response = yield request
            final = response.request
            if await _in_thread(_send_again, self.client, str(final.url),
                                final.headers.get("Authorization", ""),
                                response.status_code, response.headers):
                request.headers.update(
                    await _in_thread(self.client.auth_headers, request.method, url))
                yield request

else:  # pragma: no cover

    class HttpxAuth:
        def __init__(self, client):
            raise ImportError("HttpxAuth needs the httpx package (pip install httpx)")
