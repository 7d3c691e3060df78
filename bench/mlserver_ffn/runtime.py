"""An MLServer runtime serving the FFN bench/kserve_bench.sh gives ffn-server:
y = gelu_tanh(x·W1ᵀ + b1)·W2ᵀ + b2 in numpy (fp32), weights from the same
safetensors file. The peer ffnserve is measured against over the Open
Inference Protocol; it is not part of the product."""
import json
import struct

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


def read_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(meta["shape"])
    return tensors


class NumpyFfn(MLModel):
    async def load(self) -> bool:
        t = read_safetensors(self.settings.parameters.uri)
        self.w1t = np.ascontiguousarray(t["fc1.weight"].T)
        self.b1 = t["fc1.bias"]
        self.w2t = np.ascontiguousarray(t["fc2.weight"].T)
        self.b2 = t["fc2.bias"]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        h = x @ self.w1t + self.b1
        h = 0.5 * h * (1.0 + np.tanh(np.float32(0.7978845608) * (h + np.float32(0.044715) * h ** 3)))
        y = (h @ self.w2t + self.b2).astype(np.float32)
        return InferenceResponse(model_name=self.name, id=payload.id,
                                 outputs=[NumpyCodec.encode_output("output", y)])
