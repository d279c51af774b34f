"""Serve exported taggers over TF Serving's REST API on this machine (no Docker needed).

    python -m tfmood.serve --model-base-path saved_models/tagger [--model-name tagger] [--port 8501]
    python -m tfmood.serve --model-config-file saved_models/models.config
    curl http://127.0.0.1:8501/v1/models/tagger                  # status
    curl http://127.0.0.1:8501/v1/models/tagger/metadata         # signatures
    curl -d @request.json http://127.0.0.1:8501/v1/models/tagger:predict

Serves the newest version folder of each model and picks up new ones every --poll-seconds. Binds 127.0.0.1
unless --host says otherwise. See docs/serving.md for the routes, real TF Serving and what is not implemented.
"""

import argparse
import logging

from tfmood.serving.config import LOAD_RETRY_SECONDS, read_models_config
from tfmood.serving.server import Limits, ModelServer


def build_server(args):
    """A ModelServer with every model's versions loaded once (then polled in the background)."""
    if bool(args.model_base_path) == bool(args.model_config_file):
        raise SystemExit("Give exactly one of --model-base-path or --model-config-file.")
    limits = Limits(max_request_bytes=args.max_request_bytes, max_request_elements=args.max_request_elements,
                    max_concurrent_requests=args.max_concurrent_requests, max_connections=args.max_connections,
                    idle_timeout_seconds=args.idle_timeout_seconds)
    configs = read_models_config(args.model_config_file) if args.model_config_file else None
    from tfmood.serving.repository import Repository  # TensorFlow: only once the arguments are known good

    if configs:
        repository = Repository(configs, args.load_retry_seconds)
    else:
        repository = Repository.single(args.model_base_path, args.model_name,
                                       load_retry_seconds=args.load_retry_seconds)
    repository.poll()
    for name, config in repository.configs.items():
        if not repository.servables[name]:
            logging.warning("No version folders under %s yet: %s answers 404 until one appears.",
                            config.base_path, name)
    if args.poll_seconds > 0:
        repository.start_polling(args.poll_seconds)
    return ModelServer(repository, args.host, args.port, enable_cors=args.enable_cors, limits=limits)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfmood.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path", help="folder of integer version folders (saved_models/NAME)")
    parser.add_argument("--model-name", help="name in /v1/models/NAME (default: the base path's folder name)")
    parser.add_argument("--model-config-file", help="TF Serving models.config for several models")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="REST port (default: 8501, 0 = any free port)")
    parser.add_argument("--poll-seconds", type=float, default=1.0,
                        help="how often to look for new versions (default: 1; 0 = never)")
    parser.add_argument("--load-retry-seconds", type=positive(float), default=LOAD_RETRY_SECONDS,
                        help="retry a version that failed to load this often, and whenever its files change "
                             f"(default: {LOAD_RETRY_SECONDS:g})")
    parser.add_argument("--enable-cors", action="store_true", help="send CORS headers (browser clients)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    limits = parser.add_argument_group("limits (what one client can make the server spend)")
    defaults = Limits()
    limits.add_argument("--max-request-bytes", type=positive(int), default=defaults.max_request_bytes,
                        help="larger request bodies, before or after gzip inflation, get HTTP 413 "
                             f"(default: {defaults.max_request_bytes})")
    limits.add_argument("--max-request-elements", type=positive(int), default=defaults.max_request_elements,
                        help="input values per predict request; more get HTTP 400 "
                             f"(default: {defaults.max_request_elements})")
    limits.add_argument("--max-concurrent-requests", type=positive(int),
                        default=defaults.max_concurrent_requests,
                        help=f"requests parsed and run at once; others wait (default: "
                             f"{defaults.max_concurrent_requests})")
    limits.add_argument("--max-connections", type=positive(int), default=defaults.max_connections,
                        help=f"open connections; more get HTTP 503 (default: {defaults.max_connections})")
    limits.add_argument("--idle-timeout-seconds", type=positive(float), default=defaults.idle_timeout_seconds,
                        help="close a connection that sends nothing for this long "
                             f"(default: {defaults.idle_timeout_seconds:g})")
    return parser.parse_args(argv)


def positive(kind):
    """An argparse type: a `kind` number > 0, or a one-line usage error."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)

    server = build_server(args)
    print(f"Serving {', '.join(server.repository.configs)} on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
