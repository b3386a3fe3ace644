"""Device adapters: bytes or vendor JSON in, typed readings out.

Pure: imports only the standard library (and pydantic where a vendor JSON format needs it).
"""

from .errors import DecodeError
from .ieee11073 import Number, SpecialValue, decode_float, decode_sfloat
from .readings import DeviceTime, Measured, Reading
from .registry import Adapter, UnknownAdapter, all_adapters, get

__all__ = [
    "Adapter",
    "DecodeError",
    "DeviceTime",
    "Measured",
    "Number",
    "Reading",
    "SpecialValue",
    "UnknownAdapter",
    "all_adapters",
    "decode_float",
    "decode_sfloat",
    "get",
]
