"""Collections: create, list, inspect, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.deps import ServicesDep
from app.mapping import collection_out
from app.schemas import CollectionCreate, CollectionList, CollectionOut, problems
from app.security import check_collection_access, visible_collections

router = APIRouter(tags=["collections"])


@router.post(
    "/collections", status_code=201, response_model=CollectionOut, responses=problems(403, 409)
)
def create_collection(
    body: CollectionCreate, services: ServicesDep, request: Request
) -> CollectionOut:
    """Create a collection."""
    check_collection_access(request, body.name, write=True)
    services.collections.create(body.name)
    return collection_out(services.collections.info(body.name))


@router.get("/collections", response_model=CollectionList, responses=problems())
def list_collections(services: ServicesDep, request: Request) -> CollectionList:
    """List collections (those the API key may use)."""
    infos = services.collections.list()
    visible = set(visible_collections(request, [c.name for c in infos]))
    return CollectionList(collections=[collection_out(c) for c in infos if c.name in visible])


@router.get("/collections/{name}", response_model=CollectionOut, responses=problems(404))
def get_collection(name: str, services: ServicesDep) -> CollectionOut:
    """Show a collection's size and embedding model."""
    return collection_out(services.collections.info(name))


@router.delete(
    "/collections/{name}", status_code=204, response_class=Response, responses=problems(404, 409)
)
def delete_collection(name: str, services: ServicesDep) -> Response:
    """Delete a collection and all its documents."""
    services.collections.delete(name)
    return Response(status_code=204)
