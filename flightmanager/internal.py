"""The internal Flight server: where executors push result batches.

Clients never talk to it.  A push is accepted only with its query's MAC (made with the
cluster's push key, see :mod:`flightmanager.keys`) and only for a query this node holds a
spool for; its batches are stored as they arrive (the
node never decodes them) and the attempt commits when the stream ends cleanly.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

import grpc
import pyarrow as pa

from flightmanager.errors import BudgetExceeded, PushRefused, ResultNotFound
from flightmanager.flight import Flight_pb2 as pb
from flightmanager.flight.service import FlightService
from flightmanager.flight.wire import (
    EncodedBatch,
    FlightMessage,
    message_type,
    parse_flight_data,
    schema_from_message,
)
from flightmanager.keys import check_push_mac
from flightmanager.log_context import query_context
from flightmanager.push import PushHeader, parse_completion, parse_piece
from flightmanager.spool import ResultSpool

log = logging.getLogger(__name__)


#: how a push of a partition ended: committed; dropped (another attempt of the partition
#: won); incomplete (it ended before its completion marker: the attempt failed midway)
PushOutcome = Literal["committed", "dropped", "incomplete"]


class InternalFlightService(FlightService):
    """Accepts DoPut from executors into the spools of this node."""

    def __init__(
        self,
        push_key: bytes,
        spool_of: Callable[[str], ResultSpool | None],
        on_exhausted: Callable[[str], None] = lambda query_id: None,
        on_pushed: Callable[[str, int, PushOutcome], None] = lambda query_id, rows, outcome: None,
    ) -> None:
        self._push_key = push_key
        self._spool_of = spool_of
        self._on_exhausted = on_exhausted
        #: a push ended: (query, rows received, how it ended)
        self._on_pushed = on_pushed

    def do_put(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterable[pb.PutResult]:
        raw_first = next(requests, None)
        if raw_first is None:
            raise PushRefused("push refused: empty stream")
        first = parse_flight_data(raw_first)
        try:
            command = pb.FlightDescriptor.FromString(first.descriptor).cmd
            header = PushHeader.decode(command)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, ValueError) and "version" in str(exc) else "malformed push header"
            raise PushRefused(f"push refused: {detail}") from exc
        if not check_push_mac(self._push_key, header.query_id, header.mac):
            raise PushRefused("push refused: the push is not signed for this query")
        with query_context(header.query_id):
            result = self._receive(header, first, requests, context)
        yield result

    def _receive(
        self, header: PushHeader, first: FlightMessage, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> pb.PutResult:
        spool = self._spool_of(header.query_id)
        if spool is None:
            raise ResultNotFound(f"push refused: no result {header.query_id} on this node")
        pushed = schema_from_message(first)
        if len(pushed) and pushed.types != spool.schema.types:
            raise PushRefused(
                f"push refused: schema {pushed} does not match the result schema {spool.schema}"
            )
        writer = spool.begin(header.partition, header.attempt)
        # However the RPC ends (an executor killed mid-push included), an uncommitted
        # attempt gives its memory and disk back.
        context.add_callback(writer.abort)
        announced: int | None = None
        try:
            for raw in requests:
                message = parse_flight_data(raw)
                if not len(message.header):
                    if announced is not None:
                        raise PushRefused("push refused: data after the completion marker")
                    piece_rows = parse_piece(message.app_metadata)
                    if piece_rows is not None:
                        if piece_rows != writer.piece_rows:
                            raise PushRefused(
                                f"push of partition {header.partition} attempt {header.attempt}: a piece of "
                                f"{piece_rows} rows announced, {writer.piece_rows} received; attempt dropped"
                            )
                        writer.cut()  # committed, or dropped: another push of the piece won
                        continue
                    announced = parse_completion(message.app_metadata)
                    if announced is None:
                        raise PushRefused("push refused: unexpected metadata-only message")
                    continue
                if announced is not None:
                    raise PushRefused("push refused: data after the completion marker")
                if len(message.app_metadata) == 8:
                    (rows,) = struct.unpack("<q", message.app_metadata)
                else:
                    if message_type(message) != "record batch":
                        raise PushRefused("push refused: only record batches may follow the schema")
                    rows = _rows(message, spool.schema)
                writer.append(EncodedBatch(bytes(message.header), bytes(message.body), rows))
            if announced is None or announced != writer.rows:
                raise PushRefused(
                    f"push of partition {header.partition} attempt {header.attempt} ended without "
                    f"completing ({writer.rows} rows received, {announced} announced); attempt dropped"
                )
        except BudgetExceeded as exc:
            writer.abort()
            spool.fail(exc)  # the whole query fails, with the budget named
            self._on_exhausted(header.query_id)
            raise
        except BaseException:
            writer.abort()
            # the executor's attempt failed or was cut off midway; its committed pieces stay
            self._on_pushed(header.query_id, writer.rows, "incomplete")
            raise
        committed = writer.commit()
        self._on_pushed(header.query_id, writer.rows, "committed" if committed else "dropped")
        log.log(
            logging.DEBUG if committed else logging.INFO,
            "query %s partition %d attempt %d: %d rows %s",
            header.query_id, header.partition, header.attempt, writer.rows,
            "committed" if committed else "dropped: another attempt of the partition won",
        )
        return pb.PutResult(app_metadata=b"committed" if committed else b"duplicate")


def _rows(message: FlightMessage, schema: pa.Schema) -> int:
    return int(EncodedBatch(bytes(message.header), bytes(message.body), -1).to_record_batch(schema).num_rows)
