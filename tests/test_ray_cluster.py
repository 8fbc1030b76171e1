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
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    data_nodes = [cluster.add_node(num_cpus=2, resources={"data_node": 2}) for _ in range(2)]
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        yield cluster, data_nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_actors_on_the_data_nodes_survive_a_lost_node_and_the_batches_stay_the_same(cluster):
    cluster, data_nodes = cluster
    head = ray.get_runtime_context().get_node_id()  # the driver, where training runs
    assert head == cluster.head_node.node_id
    with pytest.raises(ConfigError, match="5 Ray actors need 5 of the resource 'data_node', the Ray cluster has 4"):
        make_stream(CONFIG, workers=5, ray_address="auto", ray_resources={"data_node": 1})
    with pytest.raises(ConfigError, match="ray_resources needs ray_address"):
        make_stream(CONFIG, workers=0, ray_resources={"data_node": 1})

    stream = make_stream(CONFIG, workers=2, ray_address="auto", ray_resources={"data_node": 1})
    assert isinstance(stream, RayStream)
    stream._timeout = 120.0  # a hang would be a failure, not a stuck CI job
    try:
        ids = {node.node_id: node for node in data_nodes}
        placed = stream.nodes()
        assert set(placed) <= set(ids) and head not in placed, (placed, list(ids), head)
        got = [next(stream) for _ in range(3)]
        lost = ids[placed[0]]  # the node of actor 0: it holds an actor for certain
        cluster.remove_node(lost)
        got += [next(stream) for _ in range(5)]  # actor 0 restarted on the other data node
        (kept,) = set(ids) - {lost.node_id}
        assert stream.nodes() == [kept, kept]
        maker = BatchMaker(CONFIG)  # a local stream: the same batches
        assert [b.index for b in got] == list(range(8))
        for b in got:
            expected = maker(b.index)
            assert np.array_equal(b.inputs, expected.inputs) and np.array_equal(b.labels, expected.labels)

        stream._timeout = 5.0
        cluster.remove_node(ids[kept])  # no node left with room: one clear line, no hang
        with pytest.raises(RuntimeError, match="no batch from the Ray actors in 5 s|a Ray actor was lost"):
            for _ in range(8):
                next(stream)
    finally:
        stream.close()
