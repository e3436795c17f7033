/*=========================================================================
 *
 *  Copyright NumFOCUS
 *
 *  Licensed under the Apache License, Version 2.0 (the "License");
 *  you may not use this file except in compliance with the License.
 *  You may obtain a copy of the License at
 *
 *         http://www.apache.org/licenses/LICENSE-2.0.txt
 *
 *  Unless required by applicable law or agreed to in writing, software
 *  distributed under the License is distributed on an "AS IS" BASIS,
 *  WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 *  See the License for the specific language governing permissions and
 *  limitations under the License.
 *
 *=========================================================================*/
// Crash isolation for cohorts: each volume runs in a worker process, so that
// a fatal signal inside a library, or the kernel's out-of-memory killer,
// fails that volume alone and the run still writes its summary.
#ifndef kdbetWorker_h
#define kdbetWorker_h

#include "kdbetCohort.h"

#include <string>

namespace kdbet
{
/** Runs RunJob for each volume, in this process or in a worker process (`kdbet __worker`, this
 * executable started anew, so that no thread pool or lock of this process is
 * inherited), which loads the run's models once and serves volume after
 * volume. A worker that dies fails the volume it was working on, its
 * temporary files are removed, and the next volume starts a new worker. The
 * worker ends with this process (Linux: PR_SET_PDEATHSIG) or when it is
 * destroyed. Where the executable cannot be started anew, volumes run in this
 * process. */
class JobRunner
{
public:
  /** \a models: loaded and checked by this process; workers load them again
   * from the same files and their checksums are compared. \a isolate: run
   * volumes in worker processes (else in this one, as for a single volume). */
  JobRunner(const Models & models, bool isolate);
  ~JobRunner();
  JobRunner(const JobRunner &) = delete;
  JobRunner &
  operator=(const JobRunner &) = delete;

  /** As RunJob: fills \a result, throws on failure (a worker's error, or the
   * signal that ended it). */
  void
  Run(const Job & job, ProgressDisplay & progress, JobResult & result);

  /** Whether the volumes run in worker processes. */
  bool
  IsIsolated() const
  {
    return !m_Executable.empty();
  }

private:
  void
  Start();
  void
  Stop();
  /** Waits for the ended worker and says how it ended. */
  std::string
  DescribeEnd();

  const Models & m_Models;
  std::string    m_Executable; // empty: volumes run in this process
  long long      m_Process{ -1 };
  int            m_Requests{ -1 };
  int            m_Replies{ -1 };
  std::string    m_Buffered;
};

/** `kdbet __worker REQUESTS REPLIES`: the worker's side, on the two pipe
 * file descriptors it inherits. */
int
Worker(int argc, char * argv[]);
} // namespace kdbet

#endif // kdbetWorker_h
