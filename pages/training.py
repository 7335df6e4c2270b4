"""Training: configure and start the recipe, watch it live, compare runs, choose the active model."""
from __future__ import annotations

from pages.ui import choose_dataset, load_dataset, page_setup  # isort: skip  (first: imports streamlit_webrtc before TensorFlow)

import time

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.card import read_card
from core.model import ModelError
from core.paths import SHIPPED_MODEL, runs_dir
from core.registry import activate, active_model_path, safe_run_dir
from core.registry import active_run as registry_active_run
from pages.ui import form
from pages.ui import pictures as face_pictures
from trainer import archive as model_archive
from trainer import jobs, runfolders
from trainer.cards import check_parent
from trainer.config import config_for
from trainer.precision import choose_precision
from trainer.recipe import make_split

page_setup("Training")
st.title("Training")
st.caption("Train the keypoint model with the recipe, watch the loss fall, then make the result the app's model.")

root = runs_dir()
root.mkdir(parents=True, exist_ok=True)

# ---------------------------------------------------------------- new run
with st.expander("New run", expanded=jobs.running_run(root) is None):
    data_path = choose_dataset("train")
    data = load_dataset(data_path) if data_path is not None else None
    has_incomplete = data is None or bool((~data.complete).any())
    preset_label = st.radio("Preset", list(form.PRESET_LABELS.values()), horizontal=True, key="preset",
                            help="; ".join(f"{label}: {form.PRESET_HELP[p]}" for p, label in form.PRESET_LABELS.items()))
    preset = next(p for p, label in form.PRESET_LABELS.items() if label == preset_label)
    base = config_for(preset)
    c1, c2, c3 = st.columns(3)
    widths_text = c1.text_input("Model widths", ",".join(map(str, base.widths)), key=f"w-{preset_label}")
    epochs = c2.number_input("Epochs per stage", 1, 200, base.epochs_per_stage, key=f"e-{preset_label}")
    complete_rows = int((data.complete & ~data.is_copy).sum()) if data is not None else 0  # jitter copies hold no one out
    test_text = c3.text_input("Held-out test rows (or fraction < 1)", form.default_test_size(complete_rows),
                              key=f"test-{data_path}",  # a new file starts from its own default
                              help="Whole people are held out until this many rows (e.g. 500) or this fraction "
                                   "(e.g. 0.1) of the complete rows is reached.")
    lrs = c1.multiselect("Learning rates", [1e-3, 1e-4, 1e-5], list(base.learning_rates), key=f"lr-{preset_label}")
    batches = c2.multiselect("Batch sizes", [16, 32, 64, 128], list(base.batch_sizes), key=f"b-{preset_label}")
    pseudo = c3.toggle("Pseudo-labeling + final cycle", base.pseudo_label and has_incomplete,
                       key=f"pseudo-{preset_label}-{has_incomplete}", disabled=not has_incomplete,
                       help="Fills the missing keypoints of incomplete rows with the model's predictions, then "
                            "trains on them too, and ends with a cycle on the complete rows.")
    if not has_incomplete:
        c3.caption("Off: every row of this file has all 15 keypoints, so there is nothing to pseudo-label.")
    a1, a2, a3, a4 = st.columns(4)
    rotation = a1.slider("Max rotation (augmentation)", 0, 30, int(base.augment.max_rotation_deg))
    flip_p = a2.slider("Flip probability", 0.0, 1.0, base.augment.flip_probability)
    shift = a3.slider("Max shift (fraction of crop)", 0.0, 0.15, base.augment.max_shift_fraction)
    balance = a4.slider("Pose balance", 0.0, 1.0, base.pose_balance,
                        help="0 = every face once per epoch (the recipe); 1 = turned heads as often as frontal ones")
    m1, m2, m3, m4 = st.columns(4)
    head = m1.selectbox("Model head", list(form.HEAD_LABELS), list(form.HEAD_LABELS).index(base.head),
                        format_func=form.HEAD_LABELS.get, key=f"head-{preset_label}")
    loss = m2.selectbox("Loss", list(form.LOSS_LABELS), list(form.LOSS_LABELS).index(base.loss),
                        format_func=form.LOSS_LABELS.get, key=f"loss-{preset_label}", help=form.LOSS_HELP)
    pixel_noise = m3.slider("Blur and occlusion probability", 0.0, 1.0, base.augment.occlusion_probability,
                            key=f"noise-{preset_label}",
                            help="How often a training face is blurred, and how often part of it is covered by a "
                                 "grey rectangle (each on its own); 0 = the recipe")
    bfloat16 = m4.selectbox("Compute precision", list(form.PRECISION_LABELS), list(form.PRECISION_LABELS).index(
        base.mixed_precision), format_func=form.PRECISION_LABELS.get, key=f"bf16-{preset_label}", help=form.PRECISION_HELP)
    m4.caption(f"This CPU: {choose_precision().reason}.")
    fine_tune = st.toggle("Start from the active model's weights (fine-tune)", bool(base.init_from),
                          key=f"tune-{preset_label}", disabled=preset in form.PRESETS_FROM_ACTIVE_MODEL,
                          help="Off: random weights (the recipe). Fine-tuning needs the active model's widths and "
                               "head, and must not hold out anyone the active model trained on. Always on for "
                               "the adapt preset (its few low-learning-rate epochs need a trained start).")
    st.session_state.setdefault("run-name", time.strftime("run-%Y%m%d-%H%M%S"))  # a stable default: keyed widget
    name = st.text_input("Run name", key="run-name", help="Letters, digits, '-', '_' and '.'")
    if st.button("Start training", type="primary", disabled=data_path is None):
        try:
            learning_rates, batch_sizes = form.stage_grid(lrs, batches)
            config = config_for(preset, dict(max_rotation_deg=rotation, flip_probability=flip_p, max_shift_fraction=shift,
                                             blur_probability=pixel_noise, occlusion_probability=pixel_noise),
                                head=head, loss=loss, mixed_precision=bfloat16,
                                data=str(data_path), widths=form.parse_widths(widths_text), epochs_per_stage=int(epochs),
                                learning_rates=learning_rates, batch_sizes=batch_sizes,
                                test_size=form.parse_test_size(test_text), pseudo_label=pseudo, pose_balance=balance,
                                init_from=str(active_model_path()) if fine_tune else "")
            split = make_split(data, config) if data is not None else None
            if split is not None and len(split.train) == 0:
                raise ValueError(f"Held-out test rows: {test_text.strip()} of the {complete_rows} complete rows "
                                 "leaves none to train on (after validation takes its share). Hold out a fraction "
                                 "(e.g. 0.1) or fewer rows.")
            if split is not None:
                check_parent(config, split)  # refused here, not minutes later in the run's log
            jobs.start(name, config.to_dict(), root)
            st.session_state.pop("import-outcome", None)  # an old import message is not about this
            st.session_state["watch"] = name
            st.success(f"Started run '{name}'.")
        except jobs.BusyError as exc:
            st.warning(str(exc))
        except ValueError as exc:
            st.error(str(exc))

# ---------------------------------------------------------------- live view
runs = runfolders.list_runs(root)
names = list(runs["run"])
default = jobs.running_run(root) or st.session_state.get("watch") or (names[0] if names else None)


def curves_figure(views: list[runfolders.RunView]) -> go.Figure:
    """Train and validation loss per epoch; one run also shows its stage boundaries, two runs are told
    apart by line style (solid: the first, dashed: the second)."""
    fig = go.Figure()
    run_names, tables = [v.name for v in views], [v.curves for v in views]
    for n, (run_name, table) in enumerate(zip(run_names, tables)):
        suffix = f" ({run_name})" if len(run_names) > 1 else ""
        line = dict(dash="dash" if n else "solid")
        fig.add_scatter(x=table["global_epoch"], y=table["loss"], name="train loss" + suffix, mode="lines+markers",
                        line=dict(color="#1f77b4", **line), marker=dict(size=8))
        fig.add_scatter(x=table["global_epoch"], y=table["val_loss"], name="validation loss" + suffix,
                        mode="lines+markers", line=dict(color="#ff7f0e", **line), marker=dict(size=8))
    title = "Loss per epoch"
    if len(run_names) == 1:
        boundaries = tables[0][tables[0]["epoch"] == 0]["global_epoch"].iloc[1:]
        for epoch in boundaries:
            fig.add_vline(x=epoch - 0.5, line_dash="dot", line_color="grey")
        if len(boundaries):
            title += " (dotted lines: stage boundaries)"
    else:
        title += f": {run_names[0]} solid, {run_names[1]} dashed"
    losses = pd.concat([pd.concat([t["loss"], t["val_loss"]]) for t in tables])
    fig.update_yaxes(title=form.loss_axis_title([v.loss for v in views]), **form.loss_axis(losses))
    fig.update_xaxes(**form.epoch_axis(max(len(t) for t in tables)))
    fig.update_layout(height=380, title=title)
    return fig


def live(run_name: str) -> None:
    path = root / run_name  # a name from the listing: a broken one (a name no run may have) is shown as broken
    view = runfolders.read_run(path)  # one read of the run's files per refresh
    state = view.status
    st.subheader(f"Run '{run_name}': {state}")
    if state == "broken":
        st.warning(f"This run cannot be shown: {view.problem}")
        return
    p = view.progress
    if p is not None:
        eta = f", about {p.eta_s / 60:.1f} min left" if p.eta_s and state == "running" else ""
        st.progress(p.fraction if state != "finished" else 1.0,
                    text=f"stage {p.stage + 1}/{p.stages} ({p.stage_name}), epoch {p.epoch}/{p.epochs}{eta}")
    if view.pseudo_labels:
        st.info(view.pseudo_labels)
    if view.precision:
        st.caption(f"Compute precision: {view.precision}.")
    table = view.curves
    if not table.empty:
        last = table.iloc[-1]
        m1, m2, m3 = st.columns(3)
        m1.metric("Validation RMSE", f"{last['val_rmse_px']:.2f} px")
        m2.metric("Train RMSE", f"{last['rmse_px']:.2f} px")
        m3.metric("Epochs done", len(table))
        st.plotly_chart(curves_figure([view]), key=f"curves-{run_name}-{len(table)}")
    if state == "failed" and view.error:
        st.error(f"The run failed: {view.error}")
    if (path / "log.txt").is_file():
        with st.expander("Log (last lines)"):
            st.code(runfolders.log_tail(path) or "(empty)")
    cancelling = st.session_state.get("cancelling") == run_name
    if state == "running" and not cancelling and st.button("Cancel run", key=f"cancel-{run_name}"):
        jobs.cancel(run_name, root)
        st.session_state["cancelling"] = cancelling = run_name
    if state == "running" and cancelling:  # until the run has stopped, which can take a batch or a save
        st.info("⏳ Cancelling: the run stops after the current batch (this can take several seconds); "
                "its checkpoints stay.")
    elif cancelling:
        st.session_state.pop("cancelling")
    # When the run ends, refresh the whole page once so the registry below lists its model.
    previous = st.session_state.get(f"state-{run_name}")
    st.session_state[f"state-{run_name}"] = state
    if previous == "running" and state != "running":
        st.rerun()


if default:
    watched = st.selectbox("Watch run", names, index=names.index(default) if default in names else 0)
    # The live view alone refreshes, every 2 s while the run trains (a finished or stopped run is drawn once): the
    # widgets around it, an open dropdown included, stay as they are. When the run ends, live() reruns the page.
    running = runfolders.status(root / watched) == "running"  # a listed name; a broken one reads as broken
    st.fragment(live, run_every=2.0 if running else None)(watched)

# ---------------------------------------------------------------- results and registry
st.header("Runs and models")
if "activated" in st.session_state:  # said after the rerun that shows the new active model everywhere
    st.success(st.session_state.pop("activated"))
active = active_model_path()
active_run = registry_active_run(root)
st.caption(f"Active model: run **{active_run}**" if active_run
           else f"Active model: the shipped model (`{active.name}`)" if active.resolve() == SHIPPED_MODEL.resolve()
           else f"Active model: `{active.name}`")
st.dataframe(form.registry_table(runs, active_run), hide_index=True)
finished = [r for r, s in zip(runs["run"], runs["status"]) if s == "finished"]
if finished:
    watched_run = st.session_state.get("watch")
    chosen = st.selectbox("Run", finished, index=finished.index(watched_run) if watched_run in finished else 0)
    path = safe_run_dir(chosen, root)
    card = read_card(path / "model.keras")
    m = card.metrics
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Test RMSE (96 px crop)", f"{m.test_rmse_px if m.test_rmse_px is not None else float('nan'):.2f} px")
    c2.metric("Held-out NME", card.end_to_end.nme or form.MISSING)
    c3.metric("Wall time", f"{(card.wall_s or 0) / 60:.1f} min")
    c4.metric("Train rows", card.data.train_rows or form.MISSING)
    per_kp = m.per_keypoint_rmse_px or {}
    if per_kp:
        st.plotly_chart(px.bar(x=list(per_kp), y=list(per_kp.values()), labels={"x": "keypoint", "y": "RMSE px"},
                               title="Test error per keypoint"), key=f"perkp-{chosen}")
    try:
        pictures = face_pictures.held_out_pictures(path / "test_faces.npz")[:8]
    except Exception:  # noqa: BLE001  a damaged file (numpy and zip raise many types): the rest of the card stays
        pictures = []
        st.warning("The held-out faces of this run cannot be shown: its test_faces.npz is unreadable.")
    if pictures:
        for col, picture in zip(st.columns(len(pictures)), pictures):
            col.image(picture, channels="BGR")
        st.caption("Held-out faces: green = true keypoints, red = predicted.")
    with st.expander("Card (JSON)"):
        st.json(card.to_dict())
    worse = form.much_worse(card, read_card(active) if active.is_file() else None)
    if worse and chosen != active_run:
        st.warning(f"'{chosen}' is much less accurate than the active model: {worse}. The Photo and Webcam "
                   "pages would place keypoints worse with it.")
    if st.button(f"Use this model ({chosen})" + (" anyway" if worse else ""), type="primary",
                 disabled=chosen == active_run):
        try:
            st.session_state.pop("import-outcome", None)
            activate(chosen)
            st.session_state["activated"] = (f"'{chosen}' is now the active model; the Photo and Webcam pages "
                                             "use it from their next run.")
            st.rerun()
        except ModelError as exc:
            st.error(str(exc))
if st.button("Use the shipped model", disabled=active.resolve() == SHIPPED_MODEL.resolve()):
    try:
        st.session_state.pop("import-outcome", None)
        activate("shipped")
        st.session_state["activated"] = "The shipped model is active again."
        st.rerun()
    except ModelError as exc:
        st.error(str(exc))
compare = st.multiselect("Compare runs' curves", list(runs.loc[runs["status"] != "broken", "run"]), max_selections=2)
if len(compare) == 2:
    views = [runfolders.read_run(safe_run_dir(r, root)) for r in compare]
    empty = [v for v in views if v.curves.empty]
    if empty:
        st.warning(f"Nothing to compare: {' and '.join(repr(v.name) for v in empty)} has no finished epoch "
                   f"({', '.join(v.status for v in empty)}).")
    else:
        st.plotly_chart(curves_figure(views), key="compare")

# ---------------------------------------------------------------- models in and out (trainer.archive)
st.header("Models in and out")
st.caption("Download a finished run (or the shipped model) as one zip: the model, its ONNX twin and its card. "
           "Upload such a zip to add it as a run: it is checked first and never becomes the active model by itself.")
down, up = st.columns(2)
exportable = (["shipped"] if SHIPPED_MODEL.is_file() else []) + finished
if exportable:
    to_export = down.selectbox("Model to download", exportable, key="export-run",
                               format_func=lambda r: "the shipped model" if r == "shipped" else r)
    # Bytes, not a deferred callable: the live view's fragment reruns drop deferred files before the click.
    archive_of = st.cache_data(model_archive.archive_bytes, max_entries=2, show_spinner="Packing the model...")
    try:
        packed = archive_of(to_export, model_archive.model_for(to_export).stat().st_mtime)
    except ModelError as exc:  # its ONNX twin is missing or stale: the message names the command that makes it
        down.warning(str(exc))
    else:
        down.download_button("Download model archive", packed, file_name=f"{to_export}.zip", mime="application/zip",
                             on_click="ignore")
        down.caption(f"{to_export}.zip, {len(packed) / 2**20:.1f} MB")
with up.form("import-model", border=False):  # one run when the person clicks Import, not one per widget
    uploaded = st.file_uploader("Model archive (.zip)", type=["zip"], key="import-archive")
    import_name = st.text_input("Name of the new run", key="import-name",
                                help="Letters, digits, '-', '_' and '.'; empty: the run named in the archive's card")
    import_clicked = st.form_submit_button("Import model")
if import_clicked and uploaded is None:
    up.warning("Choose a model archive (.zip) first.")
elif import_clicked:
    try:
        with st.spinner("Checking the archive and its models..."):
            imported = model_archive.import_archive(uploaded, import_name.strip() or None, root)
        outcome = ("success", f"Imported as run '{imported.name}': it is listed above; "
                              "'Use this model' makes it the active model.")
    except ValueError as exc:  # ArchiveError and bad run names: a message, never a traceback
        outcome = ("error", str(exc))
    # Kept with the file it is about, so the next rerun (a widget, the live view) does not wipe it.
    st.session_state["import-outcome"] = (uploaded.file_id, *outcome)
    if outcome[0] == "success":
        st.rerun()  # the runs table above lists the new run
outcome = st.session_state.get("import-outcome")
if uploaded is not None and outcome and outcome[0] == uploaded.file_id:
    getattr(up, outcome[1])(outcome[2])
