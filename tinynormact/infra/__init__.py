"""Infrastructure the science stands on, none of it specific to neural networks.

- ``allocator``: the memory freed by a training step kept for the next (glibc's malloc);
- ``files``: atomic writes (text, JSON, ``.npz``) and the notices of a run folder;
- ``folder_lock``: one process at a time owns a run or sweep folder;
- ``memory``: the memory a run needs against what the machine has;
- ``validation``: checks of plain Python values given by a user.

Import the module you need (``from tinynormact.infra.files import write_json_atomic``): this
``__init__`` loads none of them.
"""
