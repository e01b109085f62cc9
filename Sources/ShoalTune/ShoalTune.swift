// ShoalTune: hyperparameter search on a Shoal cluster. Search spaces (`SearchSpace`, from
// Swift or a JSON/YAML file), searchers that choose configurations (`RandomSearch`,
// `GridSearch`, `TPESearch`), schedulers that read each report and may end a trial or restart
// it from a better one (`FIFOScheduler`, `ASHAScheduler` and asynchronous HyperBand,
// `MedianStoppingScheduler`, `PBTScheduler`), and the `Tuner` that runs trials in reused
// `TrialWorker` actors: built-in trainables registered by name, or any program
// (`CommandTrainable`). Searchers and schedulers are values driven by reports alone, with no
// clock: their rules are tested without processes.
