"""Running `maskmtl serve`: bind the socket, load the model once, serve with uvicorn."""

from __future__ import annotations

import socket
from typing import Callable

from maskmtl_cli.errors import InputError
from maskmtl_cli.serve.config import ServeConfig


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one).

    Raises:
        InputError: The address cannot be used (port taken, unknown host, no permission).
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
        # With protocol IPPROTO_TCP (not 0) asyncio sets TCP_NODELAY on each connection;
        # without it, the two writes of a response wait for a delayed ACK: +40 ms a request
        # on keep-alive connections.
        sock = socket.socket(family, kind, protocol)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
    except OSError as error:
        raise InputError(f"Cannot listen on {host}:{port}: {error.strerror or error}. Pick "
                         "another --port (or --port 0 for any free one), or stop the program "
                         "using it.") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_server(config: ServeConfig, announce: Callable[[str], None] = lambda line: None) -> None:
    """Serve predictions until stopped: returns after Ctrl-C; SIGTERM ends the process.

    The socket is bound first, so a taken port fails before the model loads; then the model
    and detector load once, and uvicorn serves the app, running photos side by side on
    ``config.workers`` threads.

    Args:
        config: The server's options.
        announce: Called with one line for people once the server is ready (the URL).

    Raises:
        InputError: The address cannot be used, or an option is out of range.
        ModelError: The model is missing, corrupt or incompatible.
    """
    import uvicorn

    from maskmtl_cli.serve.app import create_app
    from maskmtl_cli.serve.service import PredictionService

    sock = bind_socket(config.host, config.port)
    try:
        service = PredictionService(config)
        app = create_app(service)
        url = url_of(sock)
        announce(f"Model {service.model_path} ({', '.join(service.tasks)}), detector "
                 f"{service.detector}, engine {service.engine}: loaded in "
                 f"{service.load_seconds:.1f} s. Open {url}/ in a browser; API at "
                 f"{url}/predict, docs at {url}/docs. Ctrl-C stops.")
        server = uvicorn.Server(uvicorn.Config(
            app, host=config.host, port=config.port, log_level="info",
            limit_concurrency=config.max_connections, timeout_graceful_shutdown=5,
            server_header=False))
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down: a normal stop
        pass
    finally:
        sock.close()
