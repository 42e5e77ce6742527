# The ledger's consumer, API and migrations in one image (see docker-compose.yml).
#   docker build -t infinite-ledger .
#   docker run --rm infinite-ledger --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH="/app/.venv/bin:$PATH"

RUN pip install --no-cache-dir "uv==0.13.9" \
    && useradd --create-home --uid 10001 ledger

WORKDIR /app

# Dependencies first: this layer is reused until pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY events ./events
COPY projections ./projections
COPY services ./services
COPY api ./api
RUN uv sync --frozen --no-dev && uv cache clean

USER ledger
EXPOSE 8081
ENTRYPOINT ["ledger"]
CMD ["api"]
