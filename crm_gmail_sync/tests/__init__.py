from . import test_licence
from . import test_access
from . import test_linking
from . import test_sync
