"""A loopback HTTP proxy that can lose responses: forwards the request, drops the reply.

Simulates "the FHIR server committed, but the client never heard back" for idempotency tests.
"""

from __future__ import annotations

import asyncio
import threading

from tests.servers.servers import free_port


class LossyProxy:
    """Loopback HTTP proxy that can forward a request and then drop the connection unanswered."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        self._drop = 0
        self._drop_after = 0
        self._drop_method = "POST"
        self.dropped = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def drop_next(self, n: int = 1, method: str = "POST", after: int = 0) -> None:
        """Forward the next n requests with this method (after answering `after` of them
        normally), then close without replying."""
        with self._lock:
            self._drop, self._drop_method, self._drop_after = n, method, after

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._server = server
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                length = 0
                kept = [lines[0]]
                for line in lines[1:]:
                    name = line.split(":", 1)[0].strip().lower()
                    if name == "content-length":
                        length = int(line.split(":", 1)[1])
                    if name and name != "connection":
                        kept.append(line)
                body = await reader.readexactly(length) if length else b""
                request = ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up_w.write(request + body)
                await up_w.drain()
                response = await up_r.read()  # upstream closes: Connection: close
                up_w.close()
                self.forwarded += 1
                with self._lock:
                    drop = self._drop > 0 and method == self._drop_method
                    if drop and self._drop_after > 0:
                        self._drop_after, drop = self._drop_after - 1, False
                    elif drop:
                        self._drop -= 1
                        self.dropped += 1
                if drop:
                    break
                writer.write(response)
                await writer.drain()
                if b"\r\nconnection: close" in response[:4096].lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
