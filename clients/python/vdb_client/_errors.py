"""Errors: one class per gRPC status code the server answers with, all
subclasses of `VdbError`, each keeping the server's message (which names
the field or collection at fault) and the original `grpc.RpcError`."""

from __future__ import annotations

from typing import Optional

import grpc


class VdbError(Exception):
    """A request the server refused or could not serve."""

    #: The gRPC status code this class stands for.
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, cause: Optional[grpc.RpcError] = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(VdbError):
    """Bad input: a wrong dimension, a NaN, k = 0, an unknown field. Nothing
    was stored."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(VdbError):
    """No such collection (or snapshot)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(VdbError):
    """A collection of that name exists."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(VdbError):
    """Not in this state: a write to a read replica, a collection that
    stopped accepting writes after a failure."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(VdbError):
    """The server is serving its limit of requests, or the disk is full:
    retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(VdbError):
    """A missing or unknown API key."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(VdbError):
    """A read-only key asked for a write."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(VdbError):
    """The server cannot be reached (or is shutting down): retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(VdbError):
    """The call's timeout passed before the answer came."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(VdbError):
    """The server failed (its log says why); a write may or may not be
    stored."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}


def from_rpc_error(e: grpc.RpcError) -> VdbError:
    """The exception for a failed call."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = e.details() if hasattr(e, "details") else str(e)
    cls = _BY_CODE.get(code, VdbError)
    err = cls(details or code.name, e)
    if cls is VdbError:
        err.code = code
    return err
