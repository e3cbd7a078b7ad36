"""Scoring that counts every image exactly once.

MXNet's record iterators fill the last batch of an epoch up to the batch size with
images from the start of the file and say how many in ``batch.pad``; MXNet's
``Module.score`` (which ``Module.fit`` uses for its ``Validation-*`` lines) counts them
again. ``Module`` below scores only the first ``batch_size - pad`` images of each batch.
Training (``training.fit``) and ``igc_mx.tools.evaluate`` both score through it.
"""
import mxnet as mx


def update_metric(metric, labels, outputs, pad):
    """``metric.update`` on the images of a batch that are not padding."""
    if pad:
        keep = outputs[0].shape[0] - pad
        labels = [label[:keep] for label in labels]
        outputs = [output[:keep] for output in outputs]
    metric.update(labels, outputs)


class Module(mx.mod.Module):
    """``mx.mod.Module`` whose ``score`` leaves out the padding of the last batch."""

    def score(self, eval_data, eval_metric, num_batch=None, batch_end_callback=None,
              score_end_callback=None, reset=True, epoch=0, sparse_row_id_fn=None):
        """As ``mx.mod.Module.score`` (same arguments, same callbacks), counting each
        image once."""
        assert self.binded and self.params_initialized
        if reset:
            eval_data.reset()
        if not isinstance(eval_metric, mx.metric.EvalMetric):
            eval_metric = mx.metric.create(eval_metric)
        eval_metric.reset()
        done = 0
        for nbatch, batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.prepare(batch, sparse_row_id_fn=sparse_row_id_fn)
            self.forward(batch, is_train=False)
            update_metric(eval_metric, batch.label, self.get_outputs(), batch.pad)
            _call(batch_end_callback, epoch, nbatch, eval_metric, locals())
            done += 1
        _call(score_end_callback, epoch, done, eval_metric, locals())
        return eval_metric.get_name_value()


def _call(callbacks, epoch, nbatch, metric, local_vars):
    if callbacks is None:
        return
    params = mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=metric,
                                    locals=local_vars)
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        callback(params)
