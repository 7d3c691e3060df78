"""ffn-server driven by Triton's own Python client (PyPI tritonclient).

Nothing here comes from ffnserve's code: the weights are drawn with numpy and
written as a safetensors file the server loads, and every answer is checked
against an fp64 reference computed with numpy from those weights. Run by
tests/integration/tritonclient_test.sh, which makes the venv.

    python tritonclient_test.py --server build/server/ffn-server
"""

import argparse
import json
import math
import os
import queue
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import ml_dtypes  # tritonclient's own dependency, for BF16 arrays
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

SERVER = None  # set from the command line
HTTP = False  # whether the server was started with --http-address

D_MODEL, D_FF = 16, 40
MAX_TOKENS = 32
PLAIN_ACTIVATIONS = ["relu", "leaky_relu", "prelu", "rrelu", "elu", "sigmoid", "tanh",
                     "gelu", "gelu_tanh", "silu", "quick_gelu"]
GATED_ACTIVATIONS = ["glu", "swiglu", "geglu", "geglu_tanh", "reglu"]
# |y - ref| <= tol * (|ref| + rms(ref)), element-wise (docs/ACCURACY.md's
# measure). fp32 compute; fp16 and bf16 add the rounding of input and output.
TOLERANCE = {"FP32": 1e-4, "FP16": 1e-3, "BF16": 5e-3}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def erf(x):
    return np.vectorize(math.erf)(x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def activate(name, x, alpha):
    f32 = lambda v: float(np.float32(v))  # the slopes are fp32 constants
    if name in ("relu", "reglu"):
        return np.maximum(x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, f32(0.01) * x)
    if name == "prelu":
        return np.where(x > 0, x, alpha * x)
    if name == "rrelu":
        return np.where(x > 0, x, f32((np.float32(1 / 8) + np.float32(1 / 3)) / 2) * x)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    if name in ("sigmoid", "glu"):
        return sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name in ("gelu", "geglu"):
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if name in ("gelu_tanh", "geglu_tanh"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name in ("silu", "swiglu"):
        return x * sigmoid(x)
    if name == "quick_gelu":
        return x * sigmoid(1.702 * x)
    raise ValueError(name)


class Weights:
    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        u = lambda *shape, scale: rng.uniform(-scale, scale, shape).astype(np.float32)
        self.w1 = u(D_FF, D_MODEL, scale=1 / math.sqrt(D_MODEL))
        self.b1 = u(D_FF, scale=0.1)
        self.w2 = u(D_MODEL, D_FF, scale=1 / math.sqrt(D_FF))
        self.b2 = u(D_MODEL, scale=0.1)
        self.alpha = rng.uniform(0.0, 0.5, D_FF).astype(np.float32)
        self.wg = u(D_FF, D_MODEL, scale=1 / math.sqrt(D_MODEL))
        self.wu = u(D_FF, D_MODEL, scale=1 / math.sqrt(D_MODEL))
        self.w2g = u(D_MODEL, D_FF, scale=1 / math.sqrt(D_FF))

    def reference(self, activation, x):
        x = x.astype(np.float64)
        d = lambda a: a.astype(np.float64)
        if activation in GATED_ACTIVATIONS:
            h = activate(activation, x @ d(self.wg).T, None) * (x @ d(self.wu).T)
            return h @ d(self.w2g).T
        h = activate(activation, x @ d(self.w1).T + d(self.b1), d(self.alpha))
        return h @ d(self.w2).T + d(self.b2)


def scaled_error(y, ref):
    rms = math.sqrt(float(np.mean(ref * ref)))
    return float(np.max(np.abs(y.astype(np.float64) - ref) / (np.abs(ref) + rms)))


def as_wire(x, datatype):
    """x as the wire datatype holds it, back in fp32 (what the server saw)."""
    if datatype == "FP16":
        return x.astype(np.float16).astype(np.float32)
    if datatype == "BF16":
        return x.astype(ml_dtypes.bfloat16).astype(np.float32)
    return x


class FfnServer:
    def __init__(self, folder, extra_args=()):
        self.folder = folder
        port_file = os.path.join(folder, "port")
        args = [SERVER, "--config", os.path.join(folder, "config.yaml"),
                "--address", "127.0.0.1:0", "--port-file", port_file, "--threads", "2",
                "--log-level", "warn", *extra_args]
        http_port_file = None
        if HTTP:
            http_port_file = os.path.join(folder, "http_port")
            args += ["--http-address", "127.0.0.1:0", "--http-port-file", http_port_file]
        self.process = subprocess.Popen(args)
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and os.path.getsize(port_file) > 0) or (
                http_port_file and not (os.path.exists(http_port_file)
                                        and os.path.getsize(http_port_file) > 0)):
            if self.process.poll() is not None:
                raise RuntimeError(f"ffn-server exited {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("ffn-server did not start in 60 s")
            time.sleep(0.05)
        with open(port_file) as f:
            self.grpc_url = f"127.0.0.1:{int(f.read())}"
        self.http_url = None
        if http_port_file:
            with open(http_port_file) as f:
                self.http_url = f"127.0.0.1:{int(f.read())}"

    def stop(self):
        self.process.terminate()
        self.assert_clean_exit = self.process.wait(timeout=30)


def write_config(folder):
    weights = Weights(2024)
    write_safetensors(os.path.join(folder, "plain.safetensors"),
                      {"fc1.weight": weights.w1, "fc1.bias": weights.b1,
                       "fc2.weight": weights.w2, "fc2.bias": weights.b2,
                       "alpha": weights.alpha})
    write_safetensors(os.path.join(folder, "gated.safetensors"),
                      {"gate.weight": weights.wg, "up.weight": weights.wu,
                       "down.weight": weights.w2g})
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(f"""
server: {{max_tokens_per_request: {MAX_TOKENS}}}
models:
  - name: plain
    d_model: {D_MODEL}
    d_ff: {D_FF}
    activation: gelu
    weights:
      safetensors: plain.safetensors
      tensors: {{w1: fc1.weight, b1: fc1.bias, w2: fc2.weight, b2: fc2.bias, alpha: alpha}}
  - name: gated
    d_model: {D_MODEL}
    d_ff: {D_FF}
    activation: swiglu
    weights:
      safetensors: gated.safetensors
      tensors: {{wg: gate.weight, wu: up.weight, w2: down.weight}}
""")
    return weights


class TritonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="ffn-tritonclient-")
        cls.weights = write_config(cls.folder)
        cls.server = FfnServer(cls.folder)
        cls.grpc = grpcclient.InferenceServerClient(cls.server.grpc_url)
        cls.http = httpclient.InferenceServerClient(cls.server.http_url) if HTTP else None

    @classmethod
    def tearDownClass(cls):
        cls.grpc.close()
        if cls.http:
            cls.http.close()
        cls.server.stop()
        assert cls.server.assert_clean_exit == 0, cls.server.assert_clean_exit

    def clients(self):
        return [("grpc", grpcclient, self.grpc)] + (
            [("http", httpclient, self.http)] if self.http else [])

    def infer(self, module, client, model, x, datatype="FP32", parameters=None):
        inp = module.InferInput("input", list(x.shape), datatype)
        numpy_type = {"FP32": np.float32, "FP16": np.float16, "BF16": ml_dtypes.bfloat16}[datatype]
        inp.set_data_from_numpy(x.astype(numpy_type))
        out = module.InferRequestedOutput("output")
        result = client.infer(model, [inp], outputs=[out], parameters=parameters)
        return result.as_numpy("output")

    def check(self, module, client, model, activation, datatype, tokens, seed, parameters=None):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2, 2, (tokens, D_MODEL)).astype(np.float32)
        y = self.infer(module, client, model, x, datatype, parameters)
        self.assertEqual(y.shape, (tokens, D_MODEL))
        error = scaled_error(y.astype(np.float32),
                             self.weights.reference(activation, as_wire(x, datatype)))
        self.assertLessEqual(error, TOLERANCE[datatype], f"{model} {activation} {datatype}")
        return error

    def test_server_metadata_lists_the_extensions_perf_analyzer_needs(self):
        for name, _, client in self.clients():
            with self.subTest(name):
                self.assertTrue(client.is_server_live())
                self.assertTrue(client.is_server_ready())
                metadata = client.get_server_metadata()
                if name == "grpc":
                    metadata = {"name": metadata.name, "extensions": list(metadata.extensions)}
                self.assertEqual(metadata["name"], "ffnserve")
                for extension in ("model_configuration", "statistics"):
                    self.assertIn(extension, metadata["extensions"])

    def test_model_metadata_and_config(self):
        for name, _, client in self.clients():
            with self.subTest(name):
                self.assertTrue(client.is_model_ready("plain"))
                self.assertTrue(client.is_model_ready("gated:geglu"))
                self.assertFalse(client.is_model_ready("plain:swiglu"))
                metadata = client.get_model_metadata("plain:relu", as_json=True) \
                    if name == "grpc" else client.get_model_metadata("plain:relu")
                self.assertEqual(metadata["inputs"][0]["name"], "input")
                self.assertEqual(metadata["inputs"][0]["datatype"], "FP32")
                self.assertEqual([int(d) for d in metadata["inputs"][0]["shape"]], [-1, D_MODEL])
                self.assertEqual(metadata["outputs"][0]["name"], "output")
                config = client.get_model_config("gated", as_json=True) \
                    if name == "grpc" else client.get_model_config("gated")
                if name == "grpc":
                    config = config["config"]
                self.assertEqual(int(config["max_batch_size"]), MAX_TOKENS)
                self.assertEqual([int(d) for d in config["input"][0]["dims"]], [D_MODEL])

    def test_every_variant_matches_the_fp64_reference(self):
        for name, module, client in self.clients():
            for activation in PLAIN_ACTIVATIONS + GATED_ACTIVATIONS:
                model = "gated" if activation in GATED_ACTIVATIONS else "plain"
                with self.subTest(transport=name, activation=activation):
                    self.check(module, client, f"{model}:{activation}", activation, "FP32", 3, 1)
                    self.check(module, client, model, activation, "FP32", 2, 2,
                               parameters={"activation": activation})

    def test_half_and_bfloat_inputs(self):
        for name, module, client in self.clients():
            for datatype in ("FP16", "BF16"):
                with self.subTest(transport=name, datatype=datatype):
                    self.check(module, client, "plain", "gelu", datatype, 5, 3)
                    self.check(module, client, "gated:swiglu", "swiglu", datatype, 4, 4)

    def test_bfloat_compute_parameter(self):
        rng = np.random.default_rng(5)
        x = rng.uniform(-2, 2, (4, D_MODEL)).astype(np.float32)
        y = self.infer(grpcclient, self.grpc, "plain", x, parameters={"compute_dtype": "bf16"})
        error = scaled_error(y, self.weights.reference("gelu", x))
        self.assertLessEqual(error, 5e-2)
        self.assertGreater(error, 0)  # bf16 compute is not fp32's answer

    def test_errors_are_protocol_errors_with_ffn_v1_messages(self):
        x = np.zeros((2, D_MODEL), np.float32)
        with self.assertRaises(InferenceServerException) as e:
            self.infer(grpcclient, self.grpc, "nope", x)
        self.assertEqual(e.exception.status(), "StatusCode.NOT_FOUND")
        self.assertIn("no model named 'nope'; this server has: plain, gated", e.exception.message())
        with self.assertRaises(InferenceServerException) as e:
            self.infer(grpcclient, self.grpc, "plain", np.zeros((2, D_MODEL + 1), np.float32))
        self.assertEqual(e.exception.status(), "StatusCode.INVALID_ARGUMENT")
        self.assertIn(f"input shape [2, {D_MODEL + 1}] is not [tokens, d_model = {D_MODEL}]",
                      e.exception.message())
        with self.assertRaises(InferenceServerException) as e:
            self.infer(grpcclient, self.grpc, "gated:relu", x)
        self.assertIn("activation 'relu' is not valid for gated model 'gated'", e.exception.message())
        with self.assertRaises(InferenceServerException) as e:
            self.infer(grpcclient, self.grpc, "plain", np.zeros((MAX_TOKENS + 1, D_MODEL), np.float32))
        self.assertIn(f"accepts 1 to {MAX_TOKENS}", e.exception.message())
        if self.http:
            with self.assertRaises(InferenceServerException) as e:
                self.infer(httpclient, self.http, "nope", x)
            self.assertIn("no model named 'nope'", e.exception.message())
            self.assertEqual(e.exception.status(), "404")
            with self.assertRaises(InferenceServerException) as e:
                self.infer(httpclient, self.http, "plain", np.zeros((2, D_MODEL + 1), np.float32))
            self.assertEqual(e.exception.status(), "400")

    def test_perf_analyzer_calls_in_its_order(self):
        # What perf_analyzer asks a gRPC server, in its order: the server's
        # extensions, the model's metadata and config, statistics before the
        # measured requests (async, several in flight), statistics after.
        client, model = self.grpc, "gated:reglu"
        extensions = client.get_server_metadata().extensions
        self.assertIn("statistics", extensions)
        metadata = client.get_model_metadata(model)
        config = client.get_model_config(model).config
        self.assertFalse(config.model_transaction_policy.decoupled)
        self.assertGreater(config.max_batch_size, 0)
        shape = [int(d) for d in metadata.inputs[0].shape]
        self.assertEqual(shape[1:], [int(d) for d in config.input[0].dims])
        before = client.get_inference_statistics(model).model_stats[0]

        batch, requests = 4, 40
        results = queue.Queue()
        x = np.random.default_rng(6).uniform(-1, 1, (batch, D_MODEL)).astype(np.float32)
        inp = grpcclient.InferInput(metadata.inputs[0].name, [batch] + shape[1:],
                                    metadata.inputs[0].datatype)
        inp.set_data_from_numpy(x)
        def done(result, error):
            results.put((result, error))

        for _ in range(requests):
            client.async_infer(model, [inp], done)
        expected = self.weights.reference("reglu", x)
        for _ in range(requests):
            result, error = results.get(timeout=60)
            self.assertIsNone(error)
            self.assertLessEqual(scaled_error(result.as_numpy("output"), expected), 1e-4)

        after = client.get_inference_statistics(model).model_stats[0]
        self.assertEqual(after.inference_stats.success.count - before.inference_stats.success.count,
                         requests)
        self.assertEqual(after.inference_count - before.inference_count, requests * batch)
        self.assertGreater(after.execution_count, before.execution_count)
        self.assertGreater(after.inference_stats.compute_infer.ns,
                           before.inference_stats.compute_infer.ns)
        self.assertGreater(after.inference_stats.queue.count, before.inference_stats.queue.count)
        if self.http:
            stats = self.http.get_inference_statistics(model)["model_stats"][0]
            self.assertGreaterEqual(int(stats["inference_stats"]["success"]["count"]),
                                    after.inference_stats.success.count)

    def test_http_json_tensors_and_errors(self):
        if not self.http:
            self.skipTest("no REST front end")
        # JSON (not binary) tensors, through tritonclient.
        x = np.random.default_rng(7).uniform(-1, 1, (3, D_MODEL)).astype(np.float32)
        for datatype in ("FP32", "FP16"):
            inp = httpclient.InferInput("input", [3, D_MODEL], datatype)
            inp.set_data_from_numpy(x.astype(np.float16 if datatype == "FP16" else np.float32),
                                    binary_data=False)
            out = httpclient.InferRequestedOutput("output", binary_data=False)
            y = self.http.infer("plain:sigmoid", [inp], outputs=[out]).as_numpy("output")
            error = scaled_error(y.astype(np.float32),
                                 self.weights.reference("sigmoid", as_wire(x, datatype)))
            self.assertLessEqual(error, TOLERANCE[datatype], datatype)
        # By hand: nested data, health codes, errors as {"error": ...}.
        base = f"http://{self.server.http_url}"

        def call(path, body=None):
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(base + path, data=data)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.loads(response.read() or b"null")
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read() or b"null")

        self.assertEqual(call("/v2/health/live")[0], 200)
        self.assertEqual(call("/v2/health/ready")[0], 200)
        status, body = call("/v2")
        self.assertEqual((status, body["name"]), (200, "ffnserve"))
        status, body = call("/v2/models/gated:glu/infer", {
            "id": "nested", "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, D_MODEL],
                                        "data": x[:2].tolist()}]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["id"], "nested")
        self.assertEqual(body["outputs"][0]["shape"], [2, D_MODEL])
        y = np.array(body["outputs"][0]["data"], np.float32).reshape(2, D_MODEL)
        self.assertLessEqual(scaled_error(y, self.weights.reference("glu", x[:2])), 1e-4)
        status, body = call("/v2/models/nope/infer", {"inputs": []})
        self.assertEqual(status, 404)
        self.assertIn("no model named 'nope'", body["error"])
        status, body = call("/v2/models/plain/infer", {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})
        self.assertEqual(status, 400)
        self.assertEqual(body["error"], f"input shape [1, 3] is not [tokens, d_model = {D_MODEL}]")
        status, body = call("/v2/models/plain/infer", {"inputs": "nope"})
        self.assertEqual(status, 400)
        self.assertIn("error", body)
        self.assertEqual(call("/v2/models/plain:swiglu/ready")[0], 400)
        self.assertEqual(call("/v2/models/plain/versions/1/ready")[0], 200)
        self.assertEqual(call("/v2/models/plain/versions/2")[0], 404)

    def test_stream(self):
        client = grpcclient.InferenceServerClient(self.server.grpc_url)
        answers = queue.Queue()
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        inputs = {}
        for i in range(10):
            x = np.random.default_rng(100 + i).uniform(-1, 1, (1 + i % 3, D_MODEL)).astype(np.float32)
            inp = grpcclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            inputs[str(i)] = x
            client.async_stream_infer("plain:elu", [inp], request_id=str(i))
        for _ in range(10):
            result, error = answers.get(timeout=60)
            self.assertIsNone(error)
            request_id = result.get_response().id
            y = result.as_numpy("output")
            self.assertLessEqual(scaled_error(y, self.weights.reference("elu", inputs[request_id])), 1e-4)
        client.stop_stream()
        client.close()


class BearerTokenTest(unittest.TestCase):
    def test_token_is_required(self):
        folder = tempfile.mkdtemp(prefix="ffn-tritonclient-auth-")
        write_config(folder)
        with open(os.path.join(folder, "token"), "w") as f:
            f.write("s3cret\n")
        server = FfnServer(folder, ["--auth-token-file", os.path.join(folder, "token")])
        try:
            x = np.zeros((1, D_MODEL), np.float32)
            inp = grpcclient.InferInput("input", [1, D_MODEL], "FP32")
            inp.set_data_from_numpy(x)
            client = grpcclient.InferenceServerClient(server.grpc_url)
            self.assertTrue(client.is_server_live())
            with self.assertRaises(InferenceServerException) as e:
                client.infer("plain", [inp])
            self.assertEqual(e.exception.status(), "StatusCode.UNAUTHENTICATED")
            result = client.infer("plain", [inp], headers={"authorization": "Bearer s3cret"})
            self.assertEqual(result.as_numpy("output").shape, (1, D_MODEL))
            client.close()
            if server.http_url:
                client = httpclient.InferenceServerClient(server.http_url)
                inp = httpclient.InferInput("input", [1, D_MODEL], "FP32")
                inp.set_data_from_numpy(x)
                self.assertTrue(client.is_server_live())
                with self.assertRaises(InferenceServerException) as e:
                    client.infer("plain", [inp])
                self.assertEqual(e.exception.status(), "401")
                result = client.infer("plain", [inp], headers={"authorization": "Bearer s3cret"})
                self.assertEqual(result.as_numpy("output").shape, (1, D_MODEL))
                client.close()
        finally:
            server.stop()


class TimeoutTest(unittest.TestCase):
    """infer(timeout=) in microseconds: a request that cannot start in time
    is dropped (gRPC DEADLINE_EXCEEDED, HTTP 504); one that can is served."""

    def test_a_request_that_cannot_start_in_time_is_dropped(self):
        folder = tempfile.mkdtemp(prefix="ffn-tritonclient-timeout-")
        with open(os.path.join(folder, "config.yaml"), "w") as f:
            f.write("""
models:
  - {name: slow, d_model: 8, d_ff: 16, activation: relu, debug_delay_us: 300000,
     batching: {max_batch_tokens: 1}, weights: {random: {seed: 13}}}
""")
        server = FfnServer(folder)
        try:
            transports = [(grpcclient, server.grpc_url, "StatusCode.DEADLINE_EXCEEDED")]
            if server.http_url:
                transports.append((httpclient, server.http_url, "504"))
            for module, url, expected in transports:
                # HTTP: two connections, one for the request that holds the executor.
                client = (module.InferenceServerClient(url, concurrency=2)
                          if module is httpclient else module.InferenceServerClient(url))
                inp = module.InferInput("input", [1, 8], "FP32")
                inp.set_data_from_numpy(np.ones((1, 8), np.float32))
                # The first request holds the one executor for 300 ms.
                if module is httpclient:
                    busy = client.async_infer("slow", [inp])
                else:
                    answers = queue.Queue()
                    client.async_infer("slow", [inp], lambda result, error: answers.put(error))
                time.sleep(0.05)
                with self.assertRaises(InferenceServerException) as e:
                    client.infer("slow", [inp], timeout=20000)
                self.assertEqual(e.exception.status(), expected, e.exception.message())
                if module is httpclient:
                    busy.get_result()
                else:
                    self.assertIsNone(answers.get(timeout=10))
                result = client.infer("slow", [inp], timeout=5000000)
                self.assertEqual(result.as_numpy("output").shape, (1, 8))
                client.close()
        finally:
            server.stop()
        self.assertEqual(server.assert_clean_exit, 0)


class TlsTest(unittest.TestCase):
    def test_both_transports_serve_tls_with_the_same_files(self):
        folder = tempfile.mkdtemp(prefix="ffn-tritonclient-tls-")
        write_config(folder)
        subprocess.run(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca -keyout ca.key "
            "-out ca.pem && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && "
            "openssl req -newkey rsa:2048 -nodes -subj /CN=server -keyout server.key "
            "-out server.csr && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
            "-CAcreateserial -days 2 -extfile san.ext -out server.pem",
            shell=True, cwd=folder, check=True, capture_output=True)
        server = FfnServer(folder, ["--tls-cert", os.path.join(folder, "server.pem"),
                                    "--tls-key", os.path.join(folder, "server.key")])
        try:
            ca = os.path.join(folder, "ca.pem")
            client = grpcclient.InferenceServerClient(server.grpc_url, ssl=True,
                                                      root_certificates=ca)
            self.assertEqual(client.get_server_metadata().name, "ffnserve")
            client.close()
            if server.http_url:
                context = ssl.create_default_context(cafile=ca)
                with urllib.request.urlopen(f"https://{server.http_url}/v2", context=context,
                                            timeout=30) as response:
                    self.assertEqual(json.loads(response.read())["name"], "ffnserve")
                with self.assertRaises(OSError):  # plain HTTP is refused
                    urllib.request.urlopen(f"http://{server.http_url}/v2", timeout=30).read()
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--http", action="store_true", help="also drive the REST front end")
    args, rest = parser.parse_known_args()
    SERVER, HTTP = args.server, args.http
    unittest.main(argv=[sys.argv[0], "-v", *rest])
