// ShoalTrain: training the hybrid CNN+LSTM model on market data — the dataset split by time,
// the training loop (multi-task loss, AdamW, warm-up and cosine schedule, clipping, early
// stopping), metrics, checkpoints that resume exactly, and the learning-curve report.
//
// It drives ShoalTensor and ShoalMarket and knows nothing of the cluster: the loop computes a
// batch's gradients and applies averaged gradients as two separate steps, so that data-parallel
// workers can reduce gradients between them.
