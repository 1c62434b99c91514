"""Where every record the fixtures write comes from upstream: logger name, source file, line,
level and ``%``-template — a catalogue, checked against the upstream source by hand.

Owns: the facts about upstream's logging calls (as data). Must not: hold upstream *code*
(only the message templates, which are the contract the parser reads), do I/O.

Sources (``git --git-dir=/work/.mirror/<fork>/repo show <commit>:<path>``):

* WAA: microsoft/WindowsAgentArena ``src/win-arena-container/client/`` at 6d39ed8
  (6d39ed88c545a0d40a7a02e39b928e278df7332b, 2024-11-20, "Merge pull request #48"), read from the
  fork kimtth/WindowsAgentArena, whose history contains that commit. Paths below are as the
  ``winarena`` container has them (``/client`` is the client directory; start_client.sh does
  ``cd /client`` and ``python run.py ...``; the image's Python is python:3.9-slim's).
* OSWorld ``run_multienv.py`` at xlang-ai 8be2a40 (2024-11-02, "Docker (#92)"), read from the
  fork karakuri-ai/OSWorld-JP; its ``lib_run_single.py`` at 1fd8b66 (unchanged until 1503eb3).
* OSWorld ``run_multienv.py`` "EnvProcess" rewrite (named processes ``EnvProcess-N``, a
  traceback record after each exception, signal handling), read from OSU-NLP-Group/AutoElicit
  a9f275d, which carries xlang-ai's 2025 version.
* httpx 0.28.1 ``_client.py`` (the installed one: the fixtures make a real request) and
  openai-python 1.54.4 ``_base_client.py:1087`` (the release current at WAA 6d39ed8; WAA's
  requirements leave ``openai`` unpinned).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

WAA_COMMIT: Final = "6d39ed88c545a0d40a7a02e39b928e278df7332b"
OSWORLD_COMMIT: Final = "8be2a409678e4446c8ebab9789b24996c42b38f9"
OSWORLD_REWRITE_COMMIT: Final = "a9f275dc9cabbe6f723baf1a8b4c3e44dcb3055e"  # OSU-NLP-Group/AutoElicit

# run.py:34-35, byte for byte (OSWorld's run_multienv.py:44-46 uses the same string).
WAA_FORMAT: Final = (
    "\x1b[1;33m[%(asctime)s \x1b[31m%(levelname)s \x1b[32m%(module)s/%(lineno)d-%(processName)s\x1b[1;33m] "
    "\x1b[0m%(message)s"
)

INFO: Final = logging.INFO
ERROR: Final = logging.ERROR
WARNING: Final = logging.WARNING


@dataclass(frozen=True)
class Site:
    """One ``logger.<level>(template, *args)`` call upstream."""

    logger: str
    path: str
    line: int
    level: int
    template: str
    func: str


def _waa(logger: str, file: str, line: int, level: int, template: str, func: str) -> Site:
    return Site(logger, f"/client/{file}", line, level, template, func)


_EXP = "desktopenv.experiment"  # run.py:68, lib_run_single.py:10
_ENV = "desktopenv.env"  # desktop_env.py:18
_PYC = "desktopenv.pycontroller"  # controllers/python.py:10
_PAINT = "desktopenv.metric.microsoftpaint"  # getters/microsoftpaint.py:12
_RUN, _LRS, _DENV, _CTRL = "run.py", "lib_run_single.py", "desktop_env/envs/desktop_env.py", "desktop_env/controllers/python.py"

WAA: Final[dict[str, Site]] = {
    # run.py (module "run"); the logging calls the monitor reads, and their neighbours.
    "args": _waa(_EXP, _RUN, 139, INFO, "Args: %s", "test"),
    "starting_normal": _waa(_EXP, _RUN, 208, INFO, "Windows Agent Arena: Starting on NORMAL difficulty", "test"),
    "task_config_path": _waa(_EXP, _RUN, 210, INFO, "\nTESTING ON TASK CONFIG PATH: %s", "test"),
    "domain": _waa(_EXP, _RUN, 224, INFO, "[Domain]: %s", "test"),
    "example_id": _waa(_EXP, _RUN, 225, INFO, "[Example ID]: %s", "test"),
    "instruction": _waa(_EXP, _RUN, 229, INFO, "[Instruction]: %s", "test"),
    "exception_in": _waa(_EXP, _RUN, 259, ERROR, "Exception in %s/%s: %s", "test"),
    "traceback": _waa(_EXP, _RUN, 261, ERROR, "%s", "test"),
    "finished": _waa(_EXP, _RUN, 280, INFO, "Finished %s/%s", "test"),
    "no_examples": _waa(_EXP, _RUN, 290, INFO, "No examples finished.", "test"),
    "average": _waa(_EXP, _RUN, 292, INFO, "Average score: %s", "test"),
    "task_json_path": _waa(_EXP, _RUN, 394, INFO, "\nTESTING ON TASK JSON PATH: %s", "<module>"),
    "left_tasks": _waa(_EXP, _RUN, 416, INFO, "Left tasks:\n%s", "<module>"),
    "worker": _waa(_EXP, _RUN, 436, INFO, "Worker %s is doing tasks: %s", "<module>"),
    # lib_run_single.py
    "thinking": _waa(_EXP, _LRS, 41, INFO, "Agent: Thinking...", "run_single_example"),
    "obs_none": _waa(_EXP, _LRS, 36, ERROR, "Observation is None. Waiting a little to do next step.", "run_single_example"),
    "step": _waa(_EXP, _LRS, 56, INFO, "Step %d: %s", "run_single_example"),
    "reward": _waa(_EXP, _LRS, 60, INFO, "Reward: %.2f", "run_single_example"),
    "done": _waa(_EXP, _LRS, 61, INFO, "Done: %s", "run_single_example"),
    "episode_done": _waa(_EXP, _LRS, 77, INFO, "The episode is done.", "run_single_example"),
    "evaluating": _waa(_EXP, _LRS, 82, INFO, "Running evaluator(s)...", "run_single_example"),
    "result": _waa(_EXP, _LRS, 84, INFO, "Result: %.2f", "run_single_example"),
    # desktop_env/envs/desktop_env.py (module "desktop_env")
    "initializing": _waa(_ENV, _DENV, 81, INFO, "Initializing...", "__init__"),
    "external_emulator": _waa(_ENV, _DENV, 88, INFO, "Using external emulator...", "__init__"),
    "vm_ready": _waa(_ENV, _DENV, 127, INFO, "VM is up and ready.", "_wait_emulator"),
    "vm_not_ready": _waa(_ENV, _DENV, 130, INFO, "VM not ready yet. Retrying in 5 seconds...", "_wait_emulator"),
    "vm_gave_up": _waa(_ENV, _DENV, 134, ERROR, "VM did not become ready after %d attempts.", "_wait_emulator"),
    "resetting": _waa(_ENV, _DENV, 245, INFO, "Resetting environment...", "reset"),
    "switching": _waa(_ENV, _DENV, 247, INFO, "Switching task...", "reset"),
    "counters": _waa(_ENV, _DENV, 249, INFO, "Setting counters...", "reset"),
    "reverting": _waa(_ENV, _DENV, 254, INFO, "Reverting to snapshot to %s...", "reset"),
    "revert_not_implemented": _waa(
        _ENV, _DENV, 260, ERROR,
        "Not implemented! Reverting to snapshot is not supported for remote VMs! Closing all applications instead",
        "reset",
    ),  # fmt: skip
    "starting_emulator": _waa(_ENV, _DENV, 265, INFO, "Starting emulator...", "reset"),
    "emulator_started": _waa(_ENV, _DENV, 270, INFO, "Emulator started.", "reset"),
    "cleaning_up": _waa(_ENV, _DENV, 273, INFO, "Cleaning up existing task files...", "reset"),
    "task_info": _waa(_ENV, _DENV, 276, INFO, "Setting task info...", "reset"),
    "setting_up": _waa(_ENV, _DENV, 285, INFO, "Setting up environment...", "reset"),
    "setup_complete": _waa(_ENV, _DENV, 288, INFO, "Environment setup complete.", "reset"),
    "file_not_found": _waa(_ENV, _DENV, 380, ERROR, "File not found!", "evaluate"),
    "evaluator_error": _waa(_ENV, _DENV, 383, ERROR, "An unexpected error occurred: %s", "evaluate"),
    "stopping": _waa(_ENV, _DENV, 410, INFO, "Stopping emulator...", "close"),
    "stop_not_implemented": _waa(
        _ENV, _DENV, 413, ERROR, "Not implemented! Stopping emulator is not supported for remote VMs!", "close"
    ),
    # desktop_env/controllers/python.py (module "python")
    "probe_not_200": _waa(_PYC, _CTRL, 29, ERROR, "Failed to get a successful response from the VM.", "get_probe"),
    "updated_computer": _waa(_PYC, _CTRL, 62, INFO, "Updated computer successfully", "update_computer"),
    "get_file": _waa(_PYC, _CTRL, 125, INFO, "GET_FILE, file_path: %s", "get_file"),
    "file_downloaded": _waa(_PYC, _CTRL, 127, INFO, "File downloaded successfully", "get_file"),
    "command_ok": _waa(_PYC, _CTRL, 180, INFO, "Command executed successfully: %s", "execute_python_windows_command"),
    "command_failed": _waa(
        _PYC, _CTRL, 182, ERROR, "Failed to execute command. Status code: %d", "execute_python_windows_command"
    ),
    "command_error": _waa(
        _PYC, _CTRL, 185, ERROR, "An error occurred while trying to execute the command: %s",
        "execute_python_windows_command",
    ),  # fmt: skip
    # desktop_env/evaluators/getters/microsoftpaint.py (module "microsoftpaint")
    "paint_found": _waa(
        _PAINT, "desktop_env/evaluators/getters/microsoftpaint.py", 64, INFO,
        "Result: Found a red circle in the screenshot", "find_red_circle",
    ),  # fmt: skip
    "paint_not_found": _waa(
        _PAINT, "desktop_env/evaluators/getters/microsoftpaint.py", 67, INFO,
        "Result: No red circle found in the screenshot", "find_red_circle",
    ),  # fmt: skip
    # openai-python 1.54.4 _base_client.py:1087 (logger "openai._base_client"), INFO.
    "openai_retry": Site(
        "openai._base_client", "/usr/local/lib/python3.9/site-packages/openai/_base_client.py", 1087, INFO,
        "Retrying request to %s in %f seconds", "_retry_request",
    ),  # fmt: skip
}

# print() calls of run.py (stdout: the console only, never the log file).
WAA_PRINTS: Final = {
    "waiting": 27,  # print("Waiting for the server to start...")  (at import, before logging is set up)
    "new_experiment": 335,  # print("New experiment, no result yet.")  (also 355)
    "success_rate": 357,  # print("Current Success Rate:", x, "%")
    "interrupted": 363,  # print("Interrupted by %d, shutting down" % signo)
    "response": 372,  # print("Response from server:", response.json())
    "failed_hello": 375,  # print("Failed to get hello:", e)
    "retrying": 376,  # print("Retrying...")
}

# Shell ``echo`` lines of the container (entry.sh, entry_setup.sh, start_client.sh): console only.
CONTAINER_ECHOS: Final = {
    "starting": "Starting WinArena...",  # entry.sh:6
    "starting_vm": "Starting VM...",  # entry.sh:87
    "starting_winarena_vm": "Starting WinArena VM...",  # entry_setup.sh:3
    "waiting_server": "Waiting for a response from the windows server. This might take a while...",  # entry_setup.sh:19
    "vm_up": "VM is up and running, and the Windows Arena Server is ready to use!",  # entry_setup.sh:25
    "vm_started": "VM started, server ready",  # entry.sh:89
    "skipping_image": "Skipping image preparation...",  # entry.sh:104
    "starting_client": "Starting client...",  # entry.sh:107
    "cleaning_results": "Cleaning results directory...",  # start_client.sh:82
    "running_agent": "Running agent {agent}...",  # start_client.sh:86
}

_OSW = "desktopenv.experiment"  # run_multienv.py:61, lib_run_single.py:8

# OSWorld run_multienv.py at 8be2a40 (module "run_multienv") and lib_run_single.py at 1fd8b66.
OSWORLD: Final[dict[str, Site]] = {
    "executing": Site(_OSW, "/osworld/run_multienv.py", 146, INFO, "Executing tasks in environment %s/%s", "run_env_tasks"),
    "domain": Site(_OSW, "/osworld/run_multienv.py", 156, INFO, "[Env %d][Domain]: %s", "run_env_tasks"),
    "example_id": Site(_OSW, "/osworld/run_multienv.py", 157, INFO, "[Env %d][Example ID]: %s", "run_env_tasks"),
    "instruction": Site(_OSW, "/osworld/run_multienv.py", 158, INFO, "[Env %d][Instruction]: %s", "run_env_tasks"),
    "exception_in": Site(_OSW, "/osworld/run_multienv.py", 182, ERROR, "Exception in Env%d %s/%s: %s", "run_env_tasks"),
    "args": Site(_OSW, "/osworld/run_multienv.py", 198, INFO, "Args: %s", "test"),
    "setting_up_all": Site(_OSW, "/osworld/run_multienv.py", 203, INFO, "Setting up all environments...", "test"),
    "setting_up": Site(_OSW, "/osworld/run_multienv.py", 208, INFO, "Setting up environment %d/%d", "test"),
    "all_ready": Site(
        _OSW, "/osworld/run_multienv.py", 232, INFO, "All environments are ready. Starting parallel task execution...", "test"
    ),
    "average": Site(_OSW, "/osworld/run_multienv.py", 255, INFO, "Average score: %s", "test"),
    "left_tasks": Site(_OSW, "/osworld/run_multienv.py", 351, INFO, "Left tasks:\n%s", "<module>"),
    "step": Site(_OSW, "/osworld/lib_run_single.py", 24, INFO, "Step %d: %s", "run_single_example"),
    "reward": Site(_OSW, "/osworld/lib_run_single.py", 27, INFO, "Reward: %.2f", "run_single_example"),
    "done": Site(_OSW, "/osworld/lib_run_single.py", 28, INFO, "Done: %s", "run_single_example"),
    "episode_done": Site(_OSW, "/osworld/lib_run_single.py", 45, INFO, "The episode is done.", "run_single_example"),
    "result": Site(_OSW, "/osworld/lib_run_single.py", 49, INFO, "Result: %.2f", "run_single_example"),
}

# The rewrite (AutoElicit a9f275d run_multienv.py; lib_run_single.py there: Step 37, Result 64).
OSWORLD_REWRITE: Final[dict[str, Site]] = {
    "started": Site(_OSW, "/osworld/run_multienv.py", 195, INFO, "Process %s started.", "run_env_tasks"),
    "domain": Site(_OSW, "/osworld/run_multienv.py", 208, INFO, "[%s][Domain]: %s", "run_env_tasks"),
    "example_id": Site(_OSW, "/osworld/run_multienv.py", 209, INFO, "[%s][Example ID]: %s", "run_env_tasks"),
    "instruction": Site(_OSW, "/osworld/run_multienv.py", 210, INFO, "[%s][Instruction]: %s", "run_env_tasks"),
    "exception_in": Site(_OSW, "/osworld/run_multienv.py", 233, ERROR, "Exception in %s %s/%s: %s", "run_env_tasks"),
    "traceback": Site(_OSW, "/osworld/run_multienv.py", 234, ERROR, "%s", "run_env_tasks"),
    "signal": Site(_OSW, "/osworld/run_multienv.py", 275, INFO, "Received signal %d. Gracefully shutting down...", "signal_handler"),
    "args": Site(_OSW, "/osworld/run_multienv.py", 314, INFO, "Args: %s", "test"),
    "total": Site(_OSW, "/osworld/run_multienv.py", 316, INFO, "Total tasks: %d", "test"),
    "started_process": Site(_OSW, "/osworld/run_multienv.py", 333, INFO, "Started process %s with PID %d", "test"),
    "average": Site(_OSW, "/osworld/run_multienv.py", 374, INFO, "Average score: %s", "test"),
    "left_tasks": Site(_OSW, "/osworld/run_multienv.py", 488, INFO, "Left tasks:\n%s", "<module>"),
    "step": Site(_OSW, "/osworld/lib_run_single.py", 37, INFO, "Step %d: %s", "run_single_example"),
    "reward": Site(_OSW, "/osworld/lib_run_single.py", 40, INFO, "Reward: %.2f", "run_single_example"),
    "done": Site(_OSW, "/osworld/lib_run_single.py", 41, INFO, "Done: %s", "run_single_example"),
    "episode_done": Site(_OSW, "/osworld/lib_run_single.py", 59, INFO, "The episode is done.", "run_single_example"),
    "result": Site(_OSW, "/osworld/lib_run_single.py", 64, INFO, "Result: %.2f", "run_single_example"),
}
