"""Ray on several nodes: a simulated cluster (``ray.cluster_utils.Cluster``) on this machine.

A head node, where the driver trains, and two data nodes, the only ones with the custom resource
``data_node``. The stream's actors must land on the data nodes, survive the loss of one (Ray
restarts the lost actor on the other and remakes its batches) and keep every batch the pure
function of (seed, index) it is; losing the last one must stop the stream with one clear line.
"""

import numpy as np
import pytest

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from synthxrd.data import BatchMaker, RayStream, StreamConfig, make_stream  # noqa: E402
from synthxrd.errors import ConfigError  # noqa: E402

CONFIG = StreamConfig(batch_size=12, seed=7)


@pytest.fixture(scope="module")
def cluster():
    """The head node (1 CPU, no data_node); each test adds its data nodes and ends without them."""
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def add_data_nodes(cluster, n: int = 2) -> list:
    """``n`` nodes of 2 CPUs with the custom resource ``data_node`` (2), like
    ``ray start --address HEAD:6379 --num-cpus 2 --resources '{"data_node": 2}'``."""
    nodes = [cluster.add_node(num_cpus=2, resources={"data_node": 2}) for _ in range(n)]
    cluster.wait_for_nodes()
    return nodes


def test_actors_on_the_data_nodes_survive_a_lost_node_and_the_batches_stay_the_same(cluster):
    data_nodes = add_data_nodes(cluster)
    head = ray.get_runtime_context().get_node_id()  # the driver, where training runs
    assert head == cluster.head_node.node_id
    with pytest.raises(ConfigError, match="5 Ray actors need 5 of the resource 'data_node', the Ray cluster has 4"):
        make_stream(CONFIG, workers=5, ray_address="auto", ray_resources={"data_node": 1})
    with pytest.raises(ConfigError, match="ray_resources needs ray_address"):
        make_stream(CONFIG, workers=0, ray_resources={"data_node": 1})

    stream = make_stream(CONFIG, workers=2, ray_address="auto", ray_resources={"data_node": 1})
    assert isinstance(stream, RayStream)
    stream.timeout = 120.0  # a hang would be a failure, not a stuck CI job
    fragile = RayStream(CONFIG, actors=1, resources={"data_node": 1}, max_restarts=0, timeout=120.0)
    try:
        ids = {node.node_id: node for node in data_nodes}
        placed = stream.nodes()
        assert set(placed) <= set(ids) and head not in placed, (placed, list(ids), head)
        got = [next(stream) for _ in range(3)]
        next(fragile)
        (lost,) = fragile.nodes()
        assert lost in placed  # the stream's actors are spread: one of them is on that node too
        cluster.remove_node(ids[lost])
        got += [next(stream) for _ in range(5)]  # its actor restarted on the other data node
        (kept,) = set(ids) - {lost}
        assert stream.nodes() == [kept, kept]
        maker = BatchMaker(CONFIG)  # a local stream: the same batches
        assert [b.index for b in got] == list(range(8))
        for b in got:
            expected = maker(b.index)
            assert np.array_equal(b.inputs, expected.inputs) and np.array_equal(b.labels, expected.labels)
        with pytest.raises(RuntimeError, match="a Ray actor and its batches were lost and the actor has no restart left"):
            next(fragile)  # no restart allowed: one clear line

        stream.timeout = 2.0
        cluster.remove_node(ids[kept])  # no node left with room: one clear line, no hang
        with pytest.raises(RuntimeError, match="no batch from the Ray actors in 2 s"):
            for _ in range(8):
                next(stream)
    finally:
        stream.close()
        fragile.close()


class LosingANode:
    """The trainer's stream, which removes the data node of actor 0 after the third batch (mid-run,
    between two training steps, batches of the lost actor in flight)."""

    def __init__(self, stream, cluster, data_nodes) -> None:
        self.stream, self.cluster, self.data_nodes, self.served, self.seen = stream, cluster, data_nodes, 0, {}

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.stream)
        self.served += 1
        if self.served == 3:
            self.seen["before"] = self.stream.nodes()
            self.cluster.remove_node(next(n for n in self.data_nodes if n.node_id == self.seen["before"][0]))
        return batch

    def close(self) -> None:  # the trainer closes its stream twice (at the end and on exit)
        self.seen.setdefault("after", self.stream.nodes())
        self.stream.close()


def test_training_on_the_head_goes_on_when_a_data_node_is_lost_mid_run(cluster, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import synthxrd.train as train_module
    from synthxrd.train import TrainConfig, train

    tiny = dict(model="park_small", batch_size=8, log_every=1, val_every=6, n_val_random=24, val_sets=("random",),
                checkpoint_every=2, seed=5, max_steps=6, calibrate=False)
    data_nodes = add_data_nodes(cluster)
    wrapped = []
    original = train_module.make_stream

    def make_stream(*args, **kwargs):
        wrapped.append(LosingANode(original(*args, **kwargs), cluster, data_nodes))
        return wrapped[-1]

    monkeypatch.setattr(train_module, "make_stream", make_stream)
    on_ray = train(TrainConfig(out=str(tmp_path / "ray"), workers=2, ray_address="auto",
                               ray_resources={"data_node": 1}, **tiny), progress=False)
    monkeypatch.undo()
    local = train(TrainConfig(out=str(tmp_path / "local"), workers=0, **tiny), progress=False)

    (stream,) = wrapped
    ids = [n.node_id for n in data_nodes]
    lost = stream.seen["before"][0]
    assert set(stream.seen["before"]) <= set(ids)  # the actors ran on the data nodes, not on the head
    (kept,) = set(ids) - {lost}
    assert stream.seen["after"] == [kept, kept]  # actor 0 was restarted on the remaining node
    assert on_ray["error"] is None and on_ray["step"] == 6 and stream.served == 6
    assert [h["loss"] for h in on_ray["history"]] == [h["loss"] for h in local["history"]]  # the same batches
    cluster.remove_node(next(n for n in data_nodes if n.node_id == kept))
